import { VirqError, type SimContext, type TraceChannel, type TraceEvent } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';

/**
 * The token a producer and a consumer meet on. By convention (and in every user virq
 * models) it is the eventfd: VFIO uses the trigger eventfd of a vector, KVM the irqfd's
 * eventfd. Any object works; identity is what matters, as with the kernel's pointers.
 */
export type IrqBypassToken = object;

/**
 * `struct irq_bypass_producer`: the source of a host interrupt that could bypass the host
 * (VFIO's per-vector context). `irq` is the host Linux IRQ number.
 */
export interface IrqBypassProducer {
  readonly token: IrqBypassToken | null;
  readonly irq: number;
  addConsumer?(consumer: IrqBypassConsumer): void;
  delConsumer?(consumer: IrqBypassConsumer): void;
  stop?(): void;
  start?(): void;
}

/**
 * `struct irq_bypass_consumer`: what could take the interrupt directly (KVM's irqfd).
 * `addProducer` may throw a VirqError: the connection then fails and is undone as the kernel
 * does (`del_consumer` of the producer is called back).
 */
export interface IrqBypassConsumer {
  readonly token: IrqBypassToken | null;
  addProducer(producer: IrqBypassProducer): void;
  delProducer(producer: IrqBypassProducer): void;
  stop?(): void;
  start?(): void;
}

export type IrqBypassTraceEvent = TraceEvent<
  | 'irqbypass.register_producer'
  | 'irqbypass.unregister_producer'
  | 'irqbypass.register_consumer'
  | 'irqbypass.unregister_consumer'
  | 'irqbypass.connect'
  | 'irqbypass.disconnect'
  | 'irqbypass.connect_failed'
>;

function tokenName(t: IrqBypassToken | null): string {
  if (t === null) return 'NULL';
  const named = t as { name?: unknown };
  return typeof named.name === 'string' ? named.name : 'token';
}

/**
 * virt/lib/irqbypass.c: one host-wide manager that pairs producers and consumers 1:1 by
 * token, whichever registers first.
 *
 * - register_producer: EINVAL for a NULL token; EBUSY if a producer with the token exists;
 *   a consumer with the token → connect (its failure aborts the registration); then listed.
 * - register_consumer: EINVAL for a NULL token or missing add/del_producer; EBUSY if the
 *   token or the same object is already registered; a producer with the token → connect.
 * - unregister_*: disconnect from the partner (if any), then unlist. Unregistering what is
 *   not registered does nothing (as the kernel, which only warns).
 * - connect: prod.stop, cons.stop, prod.add_consumer, cons.add_producer (failure →
 *   prod.del_consumer), cons.start, prod.start.
 * - disconnect: prod.stop, cons.stop, cons.del_producer, prod.del_consumer, cons.start,
 *   prod.start.
 *
 * Callers pass the calling function's name so the trace reads like ftrace
 * (`irq_bypass_register_producer <-vfio_msi_set_vector_signal`).
 */
export class IrqBypassManager {
  private readonly producers = new Map<IrqBypassToken, IrqBypassProducer>();
  private readonly consumers = new Map<IrqBypassToken, IrqBypassConsumer>();
  private readonly consumerObjects = new Set<IrqBypassConsumer>();
  private readonly links = new Map<IrqBypassToken, { producer: IrqBypassProducer; consumer: IrqBypassConsumer }>();
  readonly trace: TraceChannel<IrqBypassTraceEvent>;
  /** Successful connects and disconnects so far. */
  connects = 0;
  disconnects = 0;

  constructor(ctx: SimContext) {
    this.trace = ctx.trace.channel<IrqBypassTraceEvent>('irqbypass');
  }

  registerProducer(producer: IrqBypassProducer, caller = 'unknown'): void {
    if (this.trace.on) this.trace.emit('irqbypass.register_producer', 'irq_bypass_register_producer', caller, { token: tokenName(producer.token), irq: producer.irq });
    const token = producer.token;
    if (token === null) {
      throw new VirqError(IrqBypassErrorCode.BypassInvalid, 'irq_bypass_register_producer: the producer has no token; set it to the trigger eventfd', { errno: 'EINVAL' });
    }
    if (this.producers.has(token)) {
      throw new VirqError(IrqBypassErrorCode.BypassBusy, `irq_bypass_register_producer: a producer with token ${tokenName(token)} is already registered; unregister it first`, { errno: 'EBUSY' });
    }
    const consumer = this.consumers.get(token);
    if (consumer !== undefined) this.connect(producer, consumer);
    this.producers.set(token, producer);
  }

  unregisterProducer(producer: IrqBypassProducer, caller = 'unknown'): void {
    if (this.trace.on) this.trace.emit('irqbypass.unregister_producer', 'irq_bypass_unregister_producer', caller, { token: tokenName(producer.token), irq: producer.irq });
    const token = producer.token;
    if (token === null || this.producers.get(token) !== producer) return;
    const link = this.links.get(token);
    if (link !== undefined) this.disconnect(link.producer, link.consumer);
    this.producers.delete(token);
  }

  registerConsumer(consumer: IrqBypassConsumer, caller = 'unknown'): void {
    if (this.trace.on) this.trace.emit('irqbypass.register_consumer', 'irq_bypass_register_consumer', caller, { token: tokenName(consumer.token) });
    const token = consumer.token;
    if (token === null) {
      throw new VirqError(IrqBypassErrorCode.BypassInvalid, 'irq_bypass_register_consumer: the consumer has no token; set it to the irqfd eventfd', { errno: 'EINVAL' });
    }
    if (typeof consumer.addProducer !== 'function' || typeof consumer.delProducer !== 'function') {
      throw new VirqError(IrqBypassErrorCode.BypassInvalid, 'irq_bypass_register_consumer: add_producer and del_producer are required', { errno: 'EINVAL' });
    }
    if (this.consumers.has(token) || this.consumerObjects.has(consumer)) {
      throw new VirqError(IrqBypassErrorCode.BypassBusy, `irq_bypass_register_consumer: token ${tokenName(token)} or this consumer is already registered`, { errno: 'EBUSY' });
    }
    const producer = this.producers.get(token);
    if (producer !== undefined) this.connect(producer, consumer);
    this.consumers.set(token, consumer);
    this.consumerObjects.add(consumer);
  }

  unregisterConsumer(consumer: IrqBypassConsumer, caller = 'unknown'): void {
    if (this.trace.on) this.trace.emit('irqbypass.unregister_consumer', 'irq_bypass_unregister_consumer', caller, { token: tokenName(consumer.token) });
    const token = consumer.token;
    if (token === null || this.consumers.get(token) !== consumer) return;
    const link = this.links.get(token);
    if (link !== undefined) this.disconnect(link.producer, link.consumer);
    this.consumers.delete(token);
    this.consumerObjects.delete(consumer);
  }

  /** The consumer a producer is connected to (the kernel's consumer->producer link). */
  partnerOfProducer(producer: IrqBypassProducer): IrqBypassConsumer | undefined {
    const l = producer.token === null ? undefined : this.links.get(producer.token);
    return l?.producer === producer ? l.consumer : undefined;
  }

  partnerOfConsumer(consumer: IrqBypassConsumer): IrqBypassProducer | undefined {
    const l = consumer.token === null ? undefined : this.links.get(consumer.token);
    return l?.consumer === consumer ? l.producer : undefined;
  }

  get producerCount(): number {
    return this.producers.size;
  }

  get consumerCount(): number {
    return this.consumers.size;
  }

  get connectedCount(): number {
    return this.links.size;
  }

  isProducerRegistered(p: IrqBypassProducer): boolean {
    return p.token !== null && this.producers.get(p.token) === p;
  }

  isConsumerRegistered(c: IrqBypassConsumer): boolean {
    return c.token !== null && this.consumers.get(c.token) === c;
  }

  private connect(prod: IrqBypassProducer, cons: IrqBypassConsumer): void {
    prod.stop?.();
    cons.stop?.();
    try {
      prod.addConsumer?.(cons);
      try {
        cons.addProducer(prod);
      } catch (e) {
        prod.delConsumer?.(cons);
        throw e;
      }
    } catch (e) {
      cons.start?.();
      prod.start?.();
      if (this.trace.on) this.trace.emit('irqbypass.connect_failed', '__connect', undefined, { token: tokenName(prod.token), irq: prod.irq });
      if (VirqError.is(e)) throw e;
      throw new VirqError(IrqBypassErrorCode.BypassConnectFailed, `irqbypass connect of irq ${prod.irq} failed: ${String(e)}`, { cause: e });
    }
    cons.start?.();
    prod.start?.();
    this.links.set(prod.token!, { producer: prod, consumer: cons });
    this.connects++;
  }

  private disconnect(prod: IrqBypassProducer, cons: IrqBypassConsumer): void {
    prod.stop?.();
    cons.stop?.();
    cons.delProducer(prod);
    prod.delConsumer?.(cons);
    cons.start?.();
    prod.start?.();
    this.links.delete(prod.token!);
    this.disconnects++;
  }
}
