/**
 * Actors are the things that really run concurrently in a virtualised system: vCPU threads,
 * QEMU's main loop and iothreads, vhost workers, host CPUs taking physical interrupts, device
 * engines. Every scheduled event runs "on" an actor, so a trace says who did what and the
 * metrics can say how much CPU time each spent.
 */
export type ActorKind =
  | 'vcpu' // a vCPU thread (KVM_RUN loop)
  | 'vmm-main' // QEMU's main loop
  | 'iothread' // QEMU iothread
  | 'vhost-worker' // kernel vhost worker thread
  | 'backend' // a vhost-user back end (e.g. a DPDK lcore)
  | 'host-cpu' // a host CPU in interrupt context
  | 'device' // a device's own engine (a NIC's DMA, a timer)
  | 'guest' // guest code running on a vCPU (driver, handler)
  | 'kernel'; // host kernel work not bound to one of the above (workqueues)

export interface ActorInit {
  /** Task name as ftrace prints it, e.g. `CPU 0/KVM`, `qemu-system-x86`, `vhost-1234`. */
  name: string;
  kind: ActorKind;
  /** Host CPU the actor runs on (ftrace's `[cpu]` column). */
  cpu?: number;
  /** Thread id as ftrace prints it after the name. Assigned by the scheduler when omitted. */
  pid?: number;
}

export class Actor {
  readonly name: string;
  readonly kind: ActorKind;
  cpu: number;
  readonly pid: number;
  /** Virtual nanoseconds this actor has been charged with (`charge`). */
  cpuTimeNs = 0;
  /**
   * While set, trace events emitted in this actor's steps without an actor of their own are
   * the set actor's: a vCPU thread runs its guest's code inside its own step, and the guest
   * kernel's functions (its virtio driver's vring_interrupt …) belong on the guest's task.
   */
  traceAs: Actor | undefined = undefined;

  constructor(init: Required<ActorInit>) {
    this.name = init.name;
    this.kind = init.kind;
    this.cpu = init.cpu;
    this.pid = init.pid;
  }

  /** Accounts `ns` of CPU time to this actor. */
  charge(ns: number): void {
    this.cpuTimeNs += ns;
  }

  toString(): string {
    return `${this.name}-${this.pid}`;
  }
}
