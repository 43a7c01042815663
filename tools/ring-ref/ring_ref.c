/*
 * ring_ref.c — the C reference for @virq/virtio-ring's two-thread benchmark.
 *
 * One split virtqueue (virtio 1.2 layout: 16-byte descriptors, avail ring, used ring) in
 * one shared buffer, a driver thread and a device thread, both polling, batch B, 64-byte
 * buffers. The code does what the TypeScript bench does, step for step, with the checks
 * the TypeScript device makes:
 *   driver  (Linux virtio_ring model): free list, write descriptor, avail.ring[], release
 *           store of avail.idx per buffer (virtio_wmb + store), kick_prepare per batch
 *           (full fence, read used.flags), get_buf (acquire load of used.idx, id checks,
 *           free-list push).
 *   device  (QEMU virtqueue_pop model): acquire load of avail.idx, "moved index" check,
 *           head < Q check, descriptor walk with loop bound, zero-length and
 *           guest-memory bounds checks, u32 length sum, used element, release store of
 *           used.idx per batch, full fence + avail.flags read (should_notify) per batch.
 * Build: gcc -O2 -pthread ring_ref.c -o ring_ref
 * Run:   ./ring_ref [count] [batch] [qsize] [immediate|on-kick] [pin] [warm]
 *        (avail.idx publication as the TS driver's availPublish; pin: driver on CPU 0, device on CPU 1;
 *        warm: packets run first and not timed — the steady-state window is the `count` after them)
 * Prints one line: "packets=<n> seconds=<s> pps=<packets per second>" for the timed window.
 */
#define _GNU_SOURCE
#include <pthread.h>
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

static uint8_t *mem;             /* "guest memory" */
static uint64_t mem_size;
static struct desc *desc;
static volatile uint16_t *avail; /* flags, idx, ring[Q], used_event */
static volatile uint16_t *used16;/* flags, idx, then ring as used_elem */
static struct used_elem *used_ring;
static unsigned Q, B;
static int publish_on_kick;
static int pin; /* pin the driver to CPU 0 and the device to CPU 1 (as the TS bench pins its workers) */ /* 0: store avail.idx per buffer (Linux); 1: once per batch at kick_prepare */
static uint64_t COUNT;        /* warm + timed packets */
static uint64_t WARM;         /* packets before the timed window */
static struct timespec win0, win1;
static volatile int start_flag;
static uint64_t kicks, notifies, errors;

static inline uint16_t ld_acq(volatile uint16_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void st_rel(volatile uint16_t *p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static void pin_to(int cpu) {
  if (!pin) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *driver(void *arg) {
  (void)arg;
  pin_to(0);
  uint16_t *next = malloc(Q * sizeof(uint16_t));
  uint16_t *chain_len = calloc(Q, sizeof(uint16_t));
  uint64_t *tokens = calloc(Q, sizeof(uint64_t));
  for (unsigned i = 0; i < Q; i++) next[i] = (uint16_t)(i + 1);
  unsigned free_head = 0, num_free = Q;
  uint16_t avail_idx = 0, last_used = 0, used_seen = 0, num_added = 0;
  uint64_t submitted = 0, completed = 0;
  const uint64_t data = 0x80000;
  avail[0] = AVAIL_F_NO_INTERRUPT; /* polling: virtqueue_disable_cb */
  while (!__atomic_load_n(&start_flag, __ATOMIC_ACQUIRE)) {}
  while (completed < COUNT) {
    unsigned added = 0;
    while (added < B && submitted < COUNT && num_free > 0) {
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
      if (!publish_on_kick) st_rel(&avail[1], avail_idx); /* virtio_wmb(); avail->idx = shadow */
      num_added++;
      submitted++;
      added++;
    }
    if (added) { /* virtqueue_kick_prepare_split */
      if (publish_on_kick) st_rel(&avail[1], avail_idx);
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      num_added = 0;
      if (!(ld_acq(&used16[0]) & USED_F_NO_NOTIFY)) kicks++;
    }
    for (;;) { /* virtqueue_get_buf_ctx_split */
      if (last_used == used_seen) {
        used_seen = ld_acq(&used16[1]);
        if (last_used == used_seen) break;
      }
      struct used_elem *e = &used_ring[last_used & (Q - 1)];
      uint32_t id = e->id;
      if (id >= Q || chain_len[id] == 0) { errors++; return NULL; }
      unsigned n = chain_len[id], last = id;
      for (unsigned k = 1; k < n; k++) last = next[last];
      chain_len[id] = 0;
      tokens[id] = 0;
      next[last] = (uint16_t)free_head;
      free_head = id;
      num_free += n;
      last_used++;
      completed++;
      if (completed == WARM) clock_gettime(CLOCK_MONOTONIC, &win0);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &win1);
  free(next); free(chain_len); free(tokens);
  return NULL;
}

static int in_memory(uint64_t addr, uint32_t len) { return addr < mem_size && len <= mem_size - addr; }

static void *device(void *arg) {
  (void)arg;
  pin_to(1);
  uint16_t last_avail = 0, shadow_avail = 0, used_idx = 0;
  uint64_t processed = 0;
  unsigned inuse = 0;
  used16[0] = USED_F_NO_NOTIFY; /* polling: notifications disabled */
  while (!__atomic_load_n(&start_flag, __ATOMIC_ACQUIRE)) {}
  while (processed < COUNT) {
    unsigned n = 0;
    while (n < B) { /* virtqueue_pop */
      if (last_avail == shadow_avail) {
        uint16_t idx = ld_acq(&avail[1]);
        if ((uint16_t)(idx - last_avail) > Q) { errors++; return NULL; }
        shadow_avail = idx;
        if (idx == last_avail) break;
      }
      if (inuse >= Q) { errors++; return NULL; }
      uint16_t head = avail[2 + (last_avail & (Q - 1))];
      if (head >= Q) { errors++; return NULL; }
      last_avail++;
      unsigned i = head, steps = 0, out = 0, in = 0;
      uint64_t total = 0;
      for (;;) {
        if (++steps > Q) { errors++; return NULL; }
        struct desc d = desc[i];
        if (d.flags & F_INDIRECT) { errors++; return NULL; }
        if (d.len == 0 || !in_memory(d.addr, d.len)) { errors++; return NULL; }
        total += d.len;
        if (total > 0xffffffffu) { errors++; return NULL; }
        if (d.flags & F_WRITE) in++; else { if (in) { errors++; return NULL; } out++; }
        if (!(d.flags & F_NEXT)) break;
        if (d.next >= Q) { errors++; return NULL; }
        i = d.next;
      }
      inuse++;
      /* the same ordering check the TS device makes */
      if (desc[head].addr != 0x80000 + 64 * ((processed + n) & 255) || desc[head].len != 64) { errors++; return NULL; }
      /* virtqueue_fill */
      struct used_elem *e = &used_ring[(used_idx + n) & (Q - 1)];
      e->id = head;
      e->len = 0;
      n++;
    }
    if (n) { /* virtqueue_flush + virtio_split_should_notify */
      used_idx += n;
      st_rel(&used16[1], used_idx);
      inuse -= n;
      processed += n;
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (!(ld_acq(&avail[0]) & AVAIL_F_NO_INTERRUPT)) notifies++;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t timed = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
  B = argc > 2 ? (unsigned)atoi(argv[2]) : 32;
  Q = argc > 3 ? (unsigned)atoi(argv[3]) : 256;
  publish_on_kick = argc > 4 && strcmp(argv[4], "on-kick") == 0;
  pin = argc > 5 && strcmp(argv[5], "pin") == 0;
  WARM = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
  COUNT = WARM + timed;
  mem_size = 0x100000;
  mem = aligned_alloc(4096, mem_size);
  memset(mem, 0, mem_size);
  desc = (struct desc *)(mem + 0x10000);
  avail = (volatile uint16_t *)(mem + 0x10000 + 16 * Q);
  uint64_t used_off = (0x10000 + 16 * Q + 6 + 2 * Q + 4095) & ~4095ull;
  used16 = (volatile uint16_t *)(mem + used_off);
  used_ring = (struct used_elem *)(mem + used_off + 4);
  pthread_t td, tv;
  pthread_create(&tv, NULL, device, NULL);
  pthread_create(&td, NULL, driver, NULL);
  clock_gettime(CLOCK_MONOTONIC, &win0);
  __atomic_store_n(&start_flag, 1, __ATOMIC_RELEASE);
  pthread_join(td, NULL);
  pthread_join(tv, NULL);
  double s = (win1.tv_sec - win0.tv_sec) + (win1.tv_nsec - win0.tv_nsec) / 1e9;
  printf("packets=%llu seconds=%.6f pps=%.0f kicks=%llu notifies=%llu errors=%llu\n", (unsigned long long)timed, s, timed / s,
         (unsigned long long)kicks, (unsigned long long)notifies, (unsigned long long)errors);
  free(mem);
  return errors ? 1 : 0;
}
