export { HELP, runCli } from './cli.js';
