// A separate process for unix-socket.test.ts: connects to the socket given as argv[2],
// receives a memfd and an eventfd by SCM_RIGHTS, uses both, and sends its own eventfd back.
import { NativeEventFd, UnixStreamSocket, closeFd, mmapFd } from '@virq/native';

const sockPath = process.argv[2];
const sock = UnixStreamSocket.connect(sockPath);
const text = new TextDecoder();
let stage = 0;

function fail(msg: string): never {
  console.error(`child: ${msg}`);
  process.exit(2);
}

sock.onReadable(() => {
  for (;;) {
    const m = sock.recvMsg(256, 8);
    if (m === undefined) return;
    if (m === null) fail(`the parent closed the socket at stage ${stage}`);
    if (stage === 0) {
      if (m.fds.length !== 2) fail(`expected 2 fds, got ${m.fds.length}`);
      const [memfd, efd] = m.fds;
      const mem = mmapFd(memfd, 4096);
      closeFd(memfd);
      const bytes = new Uint8Array(mem.buffer);
      const greeting = text.decode(bytes.subarray(0, bytes.indexOf(0)));
      new TextEncoder().encodeInto(`child ${process.pid} read "${greeting}" and "${text.decode(m.data)}"`, bytes.subarray(1024));
      mem.unmap();
      const kick = NativeEventFd.fromFd(efd);
      kick.write(1);
      kick.close();
      const own = NativeEventFd.create();
      own.onReadable(() => {
        const v = own.read();
        sock.sendMsg(new TextEncoder().encode(`got ${v}`));
        own.close();
        sock.close(); // the parent reads EOF after "got N"
        process.exit(0);
      });
      sock.sendMsg(new TextEncoder().encode('ok'), [own.fd]);
      stage = 1;
    }
  }
});
