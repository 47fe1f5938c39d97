/*
 * vfio-bars native shim: the three calls that must not go through a generic FFI.
 *
 *  - mmap/munmap: the mapping is exposed as an *external* ArrayBuffer that munmap detaches, so a
 *    JavaScript use after unmap throws a TypeError instead of touching freed address space.
 *  - KVM_SET_USER_MEMORY_REGION: u64 arguments arrive as BigInts and are checked to be lossless, so a
 *    guest address can never be silently truncated on its way to the kernel.
 *
 * Plain C against node_api.h; errors are Error objects with code ('EINVAL'), errno and syscall.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/kvm.h>
#include <node_api.h>

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), "ENAPI", "vfio-bars shim: N-API call failed"); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

/* Largest mapping exposed as one ArrayBuffer; bigger ones (huge BARs) are returned without a view. */
#define MAX_VIEW_LENGTH ((uint64_t)1 << 32)

/*
 * errno names for the errors these three calls can return. Not strerrorname_np: that is glibc 2.32+, and
 * the prebuilt binaries must load on glibc 2.28 (Debian 10/11, RHEL 8) and on musl. An errno missing here
 * gets "E<n>"; JavaScript (src/sys/system-error.ts) names every errno Node knows from the number anyway.
 */
#define ERRNO_ENTRY(name) { name, #name }
static const struct { int number; const char *name; } ERRNO_NAMES[] = {
  ERRNO_ENTRY(EPERM), ERRNO_ENTRY(ENOENT), ERRNO_ENTRY(EINTR), ERRNO_ENTRY(EIO), ERRNO_ENTRY(ENXIO),
  ERRNO_ENTRY(EBADF), ERRNO_ENTRY(EAGAIN), ERRNO_ENTRY(ENOMEM), ERRNO_ENTRY(EACCES), ERRNO_ENTRY(EFAULT),
  ERRNO_ENTRY(EBUSY), ERRNO_ENTRY(EEXIST), ERRNO_ENTRY(ENODEV), ERRNO_ENTRY(EINVAL), ERRNO_ENTRY(ENFILE),
  ERRNO_ENTRY(EMFILE), ERRNO_ENTRY(ENOTTY), ERRNO_ENTRY(ETXTBSY), ERRNO_ENTRY(EFBIG), ERRNO_ENTRY(ENOSPC),
  ERRNO_ENTRY(ERANGE), ERRNO_ENTRY(ENOSYS), ERRNO_ENTRY(EOVERFLOW), ERRNO_ENTRY(EOPNOTSUPP), ERRNO_ENTRY(E2BIG),
};

/* Writes the errno's name into out: "EINVAL", or "E<n>" for one not in the table. */
static void errno_name(int err, char *out, size_t size) {
  for (size_t i = 0; i < sizeof ERRNO_NAMES / sizeof ERRNO_NAMES[0]; i++) {
    if (ERRNO_NAMES[i].number == err) {
      snprintf(out, size, "%s", ERRNO_NAMES[i].name);
      return;
    }
  }
  snprintf(out, size, "E%d", err);
}

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_value msg, code, error, errno_value, syscall_value;
  char name[32];
  char text[160];
  errno_name(err, name, sizeof name);
  snprintf(text, sizeof text, "%s: %s (%s)", syscall, name, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return NULL;
}

/* Conversions lean on the N-API status codes instead of separate napi_typeof calls: these run on
 * every slot update, and each N-API call costs tens of nanoseconds. */
static int get_u64(napi_env env, napi_value value, const char *name, uint64_t *out) {
  bool lossless = false;
  char text[96];
  napi_status status = napi_get_value_bigint_uint64(env, value, out, &lossless);
  if (status == napi_bigint_expected) {
    snprintf(text, sizeof text, "%s must be a bigint", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", text);
    return -1;
  }
  /* Negative or > 2^64-1 BigInts come back with lossless == false: refuse rather than wrap. */
  if (status != napi_ok || !lossless) {
    snprintf(text, sizeof text, "%s is outside u64", name);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", text);
    return -1;
  }
  return 0;
}

static int get_i32(napi_env env, napi_value value, const char *name, int32_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok || d != (double)(int32_t)d) {
    char text[96];
    snprintf(text, sizeof text, "%s must be an int32", name);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", text);
    return -1;
  }
  *out = (int32_t)d;
  return 0;
}

static int get_u32(napi_env env, napi_value value, const char *name, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok || d < 0 || d > 4294967295.0 || d != (double)(uint32_t)d) {
    char text[96];
    snprintf(text, sizeof text, "%s must be a u32", name);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", text);
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

/* setUserMemoryRegion(vmFd, slot, flags, guestPhysAddr, memorySize, userspaceAddr) */
static napi_value set_user_memory_region(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int32_t vm_fd;
  struct kvm_userspace_memory_region region;
  uint64_t gpa, size, hva;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_COUNT", "setUserMemoryRegion takes 6 arguments");
    return NULL;
  }
  memset(&region, 0, sizeof region);
  if (get_i32(env, argv[0], "vmFd", &vm_fd) || get_u32(env, argv[1], "slot", &region.slot) ||
      get_u32(env, argv[2], "flags", &region.flags) || get_u64(env, argv[3], "guestPhysAddr", &gpa) ||
      get_u64(env, argv[4], "memorySize", &size) || get_u64(env, argv[5], "userspaceAddr", &hva))
    return NULL;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = hva;
  if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
    return throw_errno(env, errno, "ioctl");
  return NULL;
}

/* The view never owns the mapping: ownership stays with the explicit munmap call. */
static void no_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)data; (void)hint;
}

/*
 * Maps `length` bytes at a virtual address VA with VA % align == align_offset (align a power of two >
 * page size, align_offset < align) by reserving length + align of PROT_NONE, placing the real mapping
 * with MAP_FIXED inside it and trimming the slack. Huge PFN mappings need the VA congruent to the file
 * offset modulo the block, not only aligned to it.
 */
static void *mmap_aligned(uint64_t length, int prot, int flags, int fd, uint64_t offset, uint64_t align,
                          uint64_t align_offset) {
  uint64_t reserve_len = length + align;
  uint8_t *reserve = mmap(NULL, reserve_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserve == MAP_FAILED) return MAP_FAILED;
  /* The first VA >= reserve that is congruent to align_offset: at most align - 1 bytes in. */
  uintptr_t base = (uintptr_t)reserve;
  uintptr_t start = ((base - align_offset + align - 1) & ~(uintptr_t)(align - 1)) + align_offset;
  if (start < base) start += align;
  void *mapped = mmap((void *)start, length, prot, flags | MAP_FIXED, fd, (off_t)offset);
  if (mapped == MAP_FAILED) {
    int err = errno;
    munmap(reserve, reserve_len);
    errno = err;
    return MAP_FAILED;
  }
  if (start > base) munmap(reserve, start - base);
  uintptr_t end = start + length, reserve_end = base + reserve_len;
  if (reserve_end > end) munmap((void *)end, reserve_end - end);
  return mapped;
}

/*
 * mmap(fd, offset, length, prot, flags, align[, alignOffset])
 *   → [address: bigint, buffer: ArrayBuffer | undefined]
 * An array, not an object: two napi_set_named_property calls look their names up in V8's string table
 * every time (~0.2 µs more per mmap, measured).
 */
static napi_value do_mmap(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], result, address, buffer;
  int32_t fd, prot, flags;
  uint64_t offset, length, align, align_offset = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6 && argc != 7) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_COUNT", "mmap takes 6 or 7 arguments");
    return NULL;
  }
  if (get_i32(env, argv[0], "fd", &fd) || get_u64(env, argv[1], "offset", &offset) ||
      get_u64(env, argv[2], "length", &length) || get_i32(env, argv[3], "prot", &prot) ||
      get_i32(env, argv[4], "flags", &flags) || get_u64(env, argv[5], "align", &align))
    return NULL;
  if (argc == 7) {
    napi_valuetype type;
    CHECK(env, napi_typeof(env, argv[6], &type));
    if (type != napi_undefined && get_u64(env, argv[6], "alignOffset", &align_offset)) return NULL;
  }
  if (offset > (uint64_t)INT64_MAX || length == 0 || length > ((uint64_t)1 << 47) || (align & (align - 1)) != 0 ||
      (align == 0 ? align_offset != 0 : align_offset >= align)) {
    return throw_errno(env, EINVAL, "mmap");
  }
  void *mapped = align > 0 ? mmap_aligned(length, prot, flags, fd, offset, align, align_offset)
                           : mmap(NULL, length, prot, flags, fd, (off_t)offset);
  if (mapped == MAP_FAILED) return throw_errno(env, errno, "mmap");

  CHECK(env, napi_create_array_with_length(env, 2, &result));
  CHECK(env, napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)mapped, &address));
  CHECK(env, napi_set_element(env, result, 0, address));
  if (length <= MAX_VIEW_LENGTH) {
    if (napi_create_external_arraybuffer(env, mapped, length, no_finalize, NULL, &buffer) != napi_ok) {
      munmap(mapped, length);
      napi_throw_error(env, "ENAPI", "vfio-bars shim: cannot create an external ArrayBuffer");
      return NULL;
    }
    CHECK(env, napi_set_element(env, result, 1, buffer));
  }
  return result;
}

/* munmap(address, length, buffer?) — detaches the view first so no JS code can reach the pages again. */
static napi_value do_munmap(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint64_t address, length;
  napi_valuetype type = napi_undefined;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_COUNT", "munmap takes 2 or 3 arguments");
    return NULL;
  }
  if (get_u64(env, argv[0], "address", &address) || get_u64(env, argv[1], "length", &length)) return NULL;
  if (argc >= 3) CHECK(env, napi_typeof(env, argv[2], &type));
  if (type == napi_object) {
    bool is_detached = false;
    CHECK(env, napi_is_detached_arraybuffer(env, argv[2], &is_detached));
    if (!is_detached) CHECK(env, napi_detach_arraybuffer(env, argv[2]));
  }
  if (munmap((void *)(uintptr_t)address, length) < 0) return throw_errno(env, errno, "munmap");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"setUserMemoryRegion", NULL, set_user_memory_region, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mmap", NULL, do_mmap, NULL, NULL, NULL, napi_enumerable, NULL},
    {"munmap", NULL, do_munmap, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
