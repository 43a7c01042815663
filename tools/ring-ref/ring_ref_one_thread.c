/*
 * ring_ref_one_thread.c — ring_ref.c's driver and device loops taken turn about in one
 * thread: the driver adds a batch and publishes avail.idx, the device pops the batch,
 * fills the used ring and publishes used.idx, the driver reclaims what was used. Same
 * layout, same steps and the same checks as ring_ref.c (and as bench/floor-one-thread.ts,
 * its JavaScript twin); with no second core there is no cache-line traffic, so the ratio
 * of the two says how far V8's code for this loop is from gcc's.
 * Build: gcc -O2 ring_ref_one_thread.c -o ring_ref_one_thread
 * Run:   ./ring_ref_one_thread [count] [batch] [qsize] [warm]
 * Prints one line: "packets=<n> seconds=<s> pps=<packets per second> errors=<n>".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define USED_F_NO_NOTIFY 1
#define AVAIL_F_NO_INTERRUPT 1

struct desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };
struct used_elem { uint32_t id; uint32_t len; };

static uint16_t ld_acq(volatile uint16_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st_rel(volatile uint16_t *p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

int main(int argc, char **argv) {
  uint64_t timed = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
  unsigned B = argc > 2 ? (unsigned)atoi(argv[2]) : 32;
  unsigned Q = argc > 3 ? (unsigned)atoi(argv[3]) : 256;
  uint64_t warm = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
  uint64_t count = warm + timed;
  const uint64_t mem_size = 0x100000, data = 0x80000;
  uint8_t *mem = aligned_alloc(4096, mem_size);
  memset(mem, 0, mem_size);
  struct desc *desc = (struct desc *)(mem + 0x10000);
  volatile uint16_t *avail = (volatile uint16_t *)(mem + 0x10000 + 16 * Q);
  uint64_t used_off = (0x10000 + 16 * Q + 6 + 2 * Q + 4095) & ~4095ull;
  volatile uint16_t *used16 = (volatile uint16_t *)(mem + used_off);
  struct used_elem *used_ring = (struct used_elem *)(mem + used_off + 4);
  uint16_t *next = malloc(Q * sizeof(uint16_t));
  uint16_t *chain_len = calloc(Q, sizeof(uint16_t));
  uint64_t *tokens = calloc(Q, sizeof(uint64_t));
  for (unsigned i = 0; i < Q; i++) next[i] = (uint16_t)(i + 1);
  /* driver state */
  unsigned free_head = 0, num_free = Q;
  uint16_t avail_idx = 0, last_used = 0, used_seen = 0;
  uint64_t submitted = 0, completed = 0, kicks = 0;
  /* device state */
  uint16_t last_avail = 0, shadow_avail = 0, used_idx = 0;
  uint64_t processed = 0, notifies = 0, errors = 0;
  unsigned inuse = 0;
  struct timespec t0, t1;
  avail[0] = AVAIL_F_NO_INTERRUPT; /* polling on both sides */
  used16[0] = USED_F_NO_NOTIFY;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (completed < count && !errors) {
    unsigned added = 0; /* driver: add a batch, virtqueue_kick_prepare_split */
    while (added < B && submitted < count && num_free > 0) {
      unsigned head = free_head;
      struct desc *d = &desc[head];
      d->addr = data + 64 * (submitted & 255);
      d->len = 64;
      d->flags = 0;
      free_head = next[head];
      num_free--;
      chain_len[head] = 1;
      tokens[head] = submitted + 1;
      avail[2 + (avail_idx & (Q - 1))] = (uint16_t)head;
      avail_idx++;
      submitted++;
      added++;
    }
    if (added) {
      st_rel(&avail[1], avail_idx);
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (!(ld_acq(&used16[0]) & USED_F_NO_NOTIFY)) kicks++;
    }
    unsigned n = 0; /* device: virtqueue_pop × batch, fill, flush, should_notify */
    while (n < B) {
      if (last_avail == shadow_avail) {
        uint16_t idx = ld_acq(&avail[1]);
        if ((uint16_t)(idx - last_avail) > Q) { errors++; break; }
        shadow_avail = idx;
        if (idx == last_avail) break;
      }
      if (inuse >= Q) { errors++; break; }
      uint16_t head = avail[2 + (last_avail & (Q - 1))];
      if (head >= Q) { errors++; break; }
      last_avail++;
      unsigned i = head, steps = 0, in = 0;
      uint64_t total = 0;
      int bad = 0;
      for (;;) {
        if (++steps > Q) { bad = 1; break; }
        struct desc d = desc[i];
        if (d.flags & F_INDIRECT) { bad = 1; break; }
        if (d.len == 0 || !(d.addr < mem_size && d.len <= mem_size - d.addr)) { bad = 1; break; }
        total += d.len;
        if (total > 0xffffffffu) { bad = 1; break; }
        if (d.flags & F_WRITE) in++; else if (in) { bad = 1; break; }
        if (!(d.flags & F_NEXT)) break;
        if (d.next >= Q) { bad = 1; break; }
        i = d.next;
      }
      if (bad) { errors++; break; }
      inuse++;
      if (desc[head].addr != data + 64 * ((processed + n) & 255) || desc[head].len != 64) { errors++; break; }
      struct used_elem *e = &used_ring[(used_idx + n) & (Q - 1)];
      e->id = head;
      e->len = 0;
      n++;
    }
    if (n) {
      used_idx += n;
      st_rel(&used16[1], used_idx);
      inuse -= n;
      processed += n;
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (!(ld_acq(&avail[0]) & AVAIL_F_NO_INTERRUPT)) notifies++;
    }
    for (;;) { /* driver: virtqueue_get_buf_ctx_split */
      if (last_used == used_seen) {
        used_seen = ld_acq(&used16[1]);
        if (last_used == used_seen) break;
      }
      uint32_t id = used_ring[last_used & (Q - 1)].id;
      if (id >= Q || chain_len[id] == 0) { errors++; break; }
      unsigned k = chain_len[id], last = id;
      for (unsigned j = 1; j < k; j++) last = next[last];
      chain_len[id] = 0;
      tokens[id] = 0;
      next[last] = (uint16_t)free_head;
      free_head = id;
      num_free += k;
      last_used++;
      completed++;
      if (completed == warm) clock_gettime(CLOCK_MONOTONIC, &t0);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("packets=%llu seconds=%.6f pps=%.0f kicks=%llu notifies=%llu errors=%llu\n", (unsigned long long)timed, s, timed / s,
         (unsigned long long)kicks, (unsigned long long)notifies, (unsigned long long)errors);
  free(next); free(chain_len); free(tokens); free(mem);
  return errors ? 1 : 0;
}
