/*
 * virq_native: the few Linux system calls Node cannot make by itself, for @virq/native.
 *
 * - eventfd(2) create/read/write, memfd_create(2) + ftruncate(2), mmap(2) MAP_SHARED as an
 *   external ArrayBuffer (zero-copy; detached on explicit unmap so later accesses are safe);
 * - AF_UNIX SOCK_STREAM listen/accept/connect/socketpair and sendmsg(2)/recvmsg(2) with
 *   SCM_RIGHTS (MSG_CMSG_CLOEXEC on receive, MSG_NOSIGNAL on send);
 * - fd readiness through libuv's uv_poll_t on Node's own loop (epoll, level-triggered),
 *   calling back into JS with napi_make_callback so nextTicks and microtasks drain.
 *
 * Convention: a system-call failure is never thrown here; the function returns -errno
 * (a negative number) and the TypeScript layer turns it into a VirqError with the errno
 * name. Only misuse of the binding itself (wrong argument types) throws.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 253 /* SCM_MAX_FD in the kernel */

#define CHECK(call)                                                                           \
  do {                                                                                        \
    if ((call) != napi_ok) {                                                                  \
      napi_throw_error(env, "native.binding", "virq_native: N-API call failed: " #call);      \
      return NULL;                                                                            \
    }                                                                                         \
  } while (0)

static napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_double(env, (double)v, &out);
  return out;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "native.binding", "virq_native: missing arguments");
    return 0;
  }
  return 1;
}

static int arg_int(napi_env env, napi_value v, int32_t* out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected an integer");
    return 0;
  }
  return 1;
}

static int arg_double(napi_env env, napi_value v, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected a number");
    return 0;
  }
  return 1;
}

static int arg_bool(napi_env env, napi_value v, bool* out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected a boolean");
    return 0;
  }
  return 1;
}

/* Copies a JS string into buf (NUL-terminated); returns its length or -1 (and throws). */
static ssize_t arg_string(napi_env env, napi_value v, char* buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected a string");
    return -1;
  }
  return (ssize_t)len;
}

static int arg_bytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  size_t length;
  void* ptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &off) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected a Uint8Array");
    return 0;
  }
  *data = (uint8_t*)ptr;
  *len = length;
  return 1;
}

/* ---------------------------------------------------------------- eventfd */

/* eventfd(initval, semaphore, nonblock) -> fd | -errno (always EFD_CLOEXEC) */
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  double initval;
  bool sem, nonblock;
  if (!get_args(env, info, 3, argv) || !arg_double(env, argv[0], &initval) ||
      !arg_bool(env, argv[1], &sem) || !arg_bool(env, argv[2], &nonblock))
    return NULL;
  int flags = EFD_CLOEXEC | (sem ? EFD_SEMAPHORE : 0) | (nonblock ? EFD_NONBLOCK : 0);
  int fd = eventfd((unsigned int)initval, flags);
  return make_int(env, fd < 0 ? -errno : fd);
}

/* eventfdRead(fd) -> bigint | -errno */
static napi_value js_eventfd_read(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  uint64_t v;
  ssize_t n;
  do n = read(fd, &v, sizeof v); while (n < 0 && errno == EINTR);
  if (n < 0) return make_int(env, -errno);
  if (n != sizeof v) return make_int(env, -EIO);
  napi_value out;
  CHECK(napi_create_bigint_uint64(env, v, &out));
  return out;
}

/* eventfdWrite(fd, bigint | number) -> 0 | -errno */
static napi_value js_eventfd_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  if (!get_args(env, info, 2, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[1], &t));
  uint64_t v;
  if (t == napi_bigint) {
    bool lossless;
    CHECK(napi_get_value_bigint_uint64(env, argv[1], &v, &lossless));
    if (!lossless) return make_int(env, -EINVAL);
  } else {
    double d;
    if (!arg_double(env, argv[1], &d)) return NULL;
    v = (uint64_t)d;
  }
  ssize_t n;
  do n = write(fd, &v, sizeof v); while (n < 0 && errno == EINTR);
  if (n < 0) return make_int(env, -errno);
  return make_int(env, 0);
}

/* ---------------------------------------------------------------- memfd, fds */

/* memfdCreate(name, allowSealing) -> fd | -errno (always MFD_CLOEXEC) */
static napi_value js_memfd_create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[250];
  bool sealing;
  if (!get_args(env, info, 2, argv) || arg_string(env, argv[0], name, sizeof name) < 0 ||
      !arg_bool(env, argv[1], &sealing))
    return NULL;
  int fd = memfd_create(name, MFD_CLOEXEC | (sealing ? MFD_ALLOW_SEALING : 0));
  return make_int(env, fd < 0 ? -errno : fd);
}

/* ftruncate(fd, size) -> 0 | -errno */
static napi_value js_ftruncate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  double size;
  if (!get_args(env, info, 2, argv) || !arg_int(env, argv[0], &fd) || !arg_double(env, argv[1], &size))
    return NULL;
  int r = ftruncate(fd, (off_t)size);
  return make_int(env, r < 0 ? -errno : 0);
}

/* fstatSize(fd) -> [st_size, isRegularFile] | -errno */
static napi_value js_fstat_size(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0) return make_int(env, -errno);
  napi_value arr, reg;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_get_boolean(env, S_ISREG(st.st_mode), &reg));
  CHECK(napi_set_element(env, arr, 0, make_int(env, (int64_t)st.st_size)));
  CHECK(napi_set_element(env, arr, 1, reg));
  return arr;
}

/* getSeals(fd) -> F_GET_SEALS bits | -errno (EINVAL: not a memfd) */
static napi_value js_get_seals(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  int r = fcntl(fd, F_GET_SEALS);
  return make_int(env, r < 0 ? -errno : r);
}

/* addSeals(fd, seals) -> 0 | -errno */
static napi_value js_add_seals(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, seals;
  if (!get_args(env, info, 2, argv) || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &seals)) return NULL;
  int r = fcntl(fd, F_ADD_SEALS, seals);
  return make_int(env, r < 0 ? -errno : 0);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  /* Linux closes the fd even when close() reports EINTR: never retry. */
  int r = close(fd);
  return make_int(env, r < 0 && errno != EINTR ? -errno : 0);
}

/* dup(fd) -> new fd (F_DUPFD_CLOEXEC) | -errno */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return make_int(env, r < 0 ? -errno : r);
}

/* setNonBlocking(fd, on) -> 0 | -errno */
static napi_value js_set_nonblocking(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool on;
  if (!get_args(env, info, 2, argv) || !arg_int(env, argv[0], &fd) || !arg_bool(env, argv[1], &on))
    return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return make_int(env, -errno);
  int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0) return make_int(env, -errno);
  return make_int(env, 0);
}

/* fdFlags(fd) -> [F_GETFL, F_GETFD] | -errno (tests check O_NONBLOCK / FD_CLOEXEC) */
static napi_value js_fd_flags(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &fd)) return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return make_int(env, -errno);
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0) return make_int(env, -errno);
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_set_element(env, arr, 0, make_int(env, fl)));
  CHECK(napi_set_element(env, arr, 1, make_int(env, fdfl)));
  return arr;
}

/* ---------------------------------------------------------------- mmap */

typedef struct {
  void* addr;
  size_t len;
  int unmapped;
} mapping_t;

static void mapping_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)data;
  mapping_t* m = (mapping_t*)hint;
  if (!m->unmapped) munmap(m->addr, m->len);
  free(m);
}

/* mmap(fd, size, offset, writable) -> ArrayBuffer | -errno ; MAP_SHARED */
static napi_value js_mmap(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  double size, offset;
  bool writable;
  if (!get_args(env, info, 4, argv) || !arg_int(env, argv[0], &fd) || !arg_double(env, argv[1], &size) ||
      !arg_double(env, argv[2], &offset) || !arg_bool(env, argv[3], &writable))
    return NULL;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* addr = mmap(NULL, (size_t)size, prot, MAP_SHARED, fd, (off_t)offset);
  if (addr == MAP_FAILED) return make_int(env, -errno);
  mapping_t* m = (mapping_t*)calloc(1, sizeof *m);
  if (!m) {
    munmap(addr, (size_t)size);
    return make_int(env, -ENOMEM);
  }
  m->addr = addr;
  m->len = (size_t)size;
  napi_value ab;
  if (napi_create_external_arraybuffer(env, addr, m->len, mapping_finalize, m, &ab) != napi_ok) {
    munmap(addr, m->len);
    free(m);
    napi_throw_error(env, "native.binding",
                     "virq_native: this Node build refuses external ArrayBuffers (V8 sandbox?)");
    return NULL;
  }
  if (napi_wrap(env, ab, m, NULL, NULL, NULL) != napi_ok) {
    /* The ArrayBuffer's finalizer still owns m and the mapping. */
    napi_throw_error(env, "native.binding", "virq_native: cannot tag the mapping");
    return NULL;
  }
  return ab;
}

/* munmap(arrayBuffer) -> 0 | -errno ; detaches the buffer first so JS can no longer reach it */
static napi_value js_munmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, argv[0], &detached) != napi_ok) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected an ArrayBuffer");
    return NULL;
  }
  if (detached) return make_int(env, -EBADF);
  void* p = NULL;
  if (napi_unwrap(env, argv[0], &p) != napi_ok || p == NULL) return make_int(env, -EINVAL);
  mapping_t* m = (mapping_t*)p;
  void* addr = m->addr;
  size_t len = m->len;
  m->unmapped = 1; /* set before detaching: the finalizer may run during or after it */
  void* unwrapped = NULL;
  napi_remove_wrap(env, argv[0], &unwrapped);
  CHECK(napi_detach_arraybuffer(env, argv[0]));
  int r = munmap(addr, len);
  return make_int(env, r < 0 ? -errno : 0);
}

/* ---------------------------------------------------------------- Unix sockets */

static int fill_addr(const char* path, size_t len, struct sockaddr_un* sa, socklen_t* salen) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof sa->sun_path) return -ENAMETOOLONG;
  memcpy(sa->sun_path, path, len);
  *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  return 0;
}

/* unixListen(path, backlog) -> fd | -errno */
static napi_value js_unix_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[256];
  int32_t backlog;
  if (!get_args(env, info, 2, argv)) return NULL;
  ssize_t len = arg_string(env, argv[0], path, sizeof path);
  if (len < 0 || !arg_int(env, argv[1], &backlog)) return NULL;
  struct sockaddr_un sa;
  socklen_t salen;
  int r = fill_addr(path, (size_t)len, &sa, &salen);
  if (r < 0) return make_int(env, r);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_int(env, -errno);
  if (bind(fd, (struct sockaddr*)&sa, salen) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return make_int(env, -e);
  }
  return make_int(env, fd);
}

/* unixAccept(listenFd) -> fd | -errno */
static napi_value js_unix_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t lfd;
  if (!get_args(env, info, 1, argv) || !arg_int(env, argv[0], &lfd)) return NULL;
  int fd;
  do fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); while (fd < 0 && errno == EINTR);
  return make_int(env, fd < 0 ? -errno : fd);
}

/* unixConnect(path) -> fd | -errno ; the socket is non-blocking (a full backlog is EAGAIN) */
static napi_value js_unix_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[256];
  if (!get_args(env, info, 1, argv)) return NULL;
  ssize_t len = arg_string(env, argv[0], path, sizeof path);
  if (len < 0) return NULL;
  struct sockaddr_un sa;
  socklen_t salen;
  int r = fill_addr(path, (size_t)len, &sa, &salen);
  if (r < 0) return make_int(env, r);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_int(env, -errno);
  do r = connect(fd, (struct sockaddr*)&sa, salen); while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    close(fd);
    return make_int(env, -e);
  }
  return make_int(env, fd);
}

/* socketpair(out Int32Array[2]) -> 0 | -errno ; AF_UNIX SOCK_STREAM, non-blocking, cloexec */
static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  napi_typedarray_type type;
  size_t length;
  void* ptr;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &ptr, NULL, NULL) != napi_ok ||
      type != napi_int32_array || length < 2) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected an Int32Array(2)");
    return NULL;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return make_int(env, -errno);
  ((int32_t*)ptr)[0] = sv[0];
  ((int32_t*)ptr)[1] = sv[1];
  return make_int(env, 0);
}

/* sendmsg(fd, bytes: Uint8Array, fds: number[] | null) -> bytes sent | -errno */
static napi_value js_sendmsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  uint8_t* data;
  size_t len;
  if (!get_args(env, info, 3, argv) || !arg_int(env, argv[0], &fd) || !arg_bytes(env, argv[1], &data, &len))
    return NULL;
  uint32_t nfds = 0;
  bool is_array = false;
  napi_is_array(env, argv[2], &is_array);
  if (is_array) CHECK(napi_get_array_length(env, argv[2], &nfds));
  if (nfds > MAX_FDS) return make_int(env, -ETOOMANYREFS);
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(ctl.buf, 0, CMSG_SPACE(sizeof(int) * nfds));
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    int* out = (int*)CMSG_DATA(c);
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value e;
      int32_t v;
      CHECK(napi_get_element(env, argv[2], i, &e));
      if (!arg_int(env, e, &v)) return NULL;
      memcpy(out + i, &v, sizeof v);
    }
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  return make_int(env, n < 0 ? -errno : n);
}

/*
 * recvmsg(fd, into: Uint8Array, maxFds, out: Int32Array) -> bytes | -errno
 * out[0] = number of fds received, out[1] = msg_flags (MSG_CTRUNC...), out[2..] = the fds.
 * MSG_CMSG_CLOEXEC: received fds never leak into children spawned later.
 */
static napi_value js_recvmsg(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, max_fds;
  uint8_t* data;
  size_t len;
  if (!get_args(env, info, 4, argv) || !arg_int(env, argv[0], &fd) || !arg_bytes(env, argv[1], &data, &len) ||
      !arg_int(env, argv[2], &max_fds))
    return NULL;
  napi_typedarray_type type;
  size_t out_len;
  void* out_ptr;
  if (napi_get_typedarray_info(env, argv[3], &type, &out_len, &out_ptr, NULL, NULL) != napi_ok ||
      type != napi_int32_array || out_len < 2) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected an Int32Array for results");
    return NULL;
  }
  int32_t* out = (int32_t*)out_ptr;
  if (max_fds < 0) max_fds = 0;
  if (max_fds > MAX_FDS) max_fds = MAX_FDS;
  if ((size_t)max_fds > out_len - 2) max_fds = (int32_t)(out_len - 2);
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  /* Always offer room for at least one fd: with no control buffer at all the kernel
   * would silently discard (close) any fds the peer attached. MSG_CTRUNC reports it. */
  size_t room = max_fds > 0 ? (size_t)max_fds : 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * room);
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0) return make_int(env, -errno);
  int32_t count = 0;
  int flags = msg.msg_flags;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int* in = (int*)CMSG_DATA(c);
    for (size_t i = 0; i < k; i++) {
      int v;
      memcpy(&v, in + i, sizeof v);
      if (count < max_fds) {
        out[2 + count++] = v;
      } else {
        close(v); /* room for one was offered only to catch unwanted fds */
        flags |= MSG_CTRUNC;
      }
    }
  }
  out[0] = count;
  out[1] = flags;
  return make_int(env, n);
}

/* ---------------------------------------------------------------- readiness (uv_poll) */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int closed;
} watcher_t;

static void watcher_closed(uv_handle_t* h) { free(h->data); }

static void watcher_shutdown(watcher_t* w, int release_js) {
  if (w->closed) return;
  w->closed = 1;
  uv_poll_stop(&w->poll);
  if (release_js) {
    napi_delete_reference(w->env, w->callback);
    napi_async_destroy(w->env, w->async);
  }
  uv_close((uv_handle_t*)&w->poll, watcher_closed);
}

static void watcher_env_cleanup(void* arg) { watcher_shutdown((watcher_t*)arg, 0); }

static void watcher_fired(uv_poll_t* h, int status, int events) {
  watcher_t* w = (watcher_t*)h->data;
  if (w->closed) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv);
    napi_create_int32(env, status, &argv[0]);
    napi_create_int32(env, events, &argv[1]);
    napi_status st = napi_make_callback(env, w->async, recv, cb, 2, argv, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void watcher_external_finalize(napi_env env, void* data, void* hint) {
  /* The watcher is owned by the loop until stopped; JS guards against stopping twice. */
  (void)env;
  (void)data;
  (void)hint;
}

/* pollStart(fd, events, callback(status, events)) -> handle | -errno */
static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, events;
  if (!get_args(env, info, 3, argv) || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &events))
    return NULL;
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  watcher_t* w = (watcher_t*)calloc(1, sizeof *w);
  if (!w) return make_int(env, -ENOMEM);
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    return make_int(env, r); /* libuv errors are -errno on Linux */
  }
  w->poll.data = w;
  w->env = env;
  napi_value name;
  CHECK(napi_create_string_utf8(env, "virq:FdWatcher", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &w->async));
  CHECK(napi_create_reference(env, argv[2], 1, &w->callback));
  r = uv_poll_start(&w->poll, events, watcher_fired);
  if (r < 0) {
    watcher_shutdown(w, 1);
    return make_int(env, r);
  }
  napi_add_env_cleanup_hook(env, watcher_env_cleanup, w);
  napi_value ext;
  CHECK(napi_create_external(env, w, watcher_external_finalize, NULL, &ext));
  return ext;
}

static watcher_t* arg_watcher(napi_env env, napi_value v) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "native.binding", "virq_native: expected a watcher handle");
    return NULL;
  }
  return (watcher_t*)p;
}

/* pollUpdate(handle, events) -> 0 | -errno */
static napi_value js_poll_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t events;
  if (!get_args(env, info, 2, argv)) return NULL;
  watcher_t* w = arg_watcher(env, argv[0]);
  if (!w || !arg_int(env, argv[1], &events)) return NULL;
  if (w->closed) return make_int(env, -EBADF);
  int r = events == 0 ? uv_poll_stop(&w->poll) : uv_poll_start(&w->poll, events, watcher_fired);
  return make_int(env, r);
}

/* pollRef(handle, ref) */
static napi_value js_poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool ref;
  if (!get_args(env, info, 2, argv)) return NULL;
  watcher_t* w = arg_watcher(env, argv[0]);
  if (!w || !arg_bool(env, argv[1], &ref)) return NULL;
  if (w->closed) return make_int(env, -EBADF);
  if (ref) uv_ref((uv_handle_t*)&w->poll);
  else uv_unref((uv_handle_t*)&w->poll);
  return make_int(env, 0);
}

/* pollStop(handle) -> 0 ; the handle must not be used again */
static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  watcher_t* w = arg_watcher(env, argv[0]);
  if (!w) return NULL;
  if (w->closed) return make_int(env, -EBADF);
  napi_remove_env_cleanup_hook(env, watcher_env_cleanup, w);
  watcher_shutdown(w, 1);
  return make_int(env, 0);
}

/* ---------------------------------------------------------------- module */

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      FN("eventfd", js_eventfd),
      FN("eventfdRead", js_eventfd_read),
      FN("eventfdWrite", js_eventfd_write),
      FN("memfdCreate", js_memfd_create),
      FN("ftruncate", js_ftruncate),
      FN("fstatSize", js_fstat_size),
      FN("getSeals", js_get_seals),
      FN("addSeals", js_add_seals),
      FN("close", js_close),
      FN("dup", js_dup),
      FN("setNonBlocking", js_set_nonblocking),
      FN("fdFlags", js_fd_flags),
      FN("mmap", js_mmap),
      FN("munmap", js_munmap),
      FN("unixListen", js_unix_listen),
      FN("unixAccept", js_unix_accept),
      FN("unixConnect", js_unix_connect),
      FN("socketpair", js_socketpair),
      FN("sendmsg", js_sendmsg),
      FN("recvmsg", js_recvmsg),
      FN("pollStart", js_poll_start),
      FN("pollUpdate", js_poll_update),
      FN("pollRef", js_poll_ref),
      FN("pollStop", js_poll_stop),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
