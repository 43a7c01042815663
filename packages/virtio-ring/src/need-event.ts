/**
 * The event-index rule (FACTS §1.4; Linux `vring_need_event`, DPDK `vhost_need_event`):
 * notify iff `event` lies in the half-open window [old, new), all arithmetic mod 2^16.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
