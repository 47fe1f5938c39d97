/*
 * The C baseline for `npm run bench`: the same syscalls the library makes, timed the same way.
 * usage: kvm-bench <case> <iterations> [slots]   → prints {"case":..., "nsPerOp":...}
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int vm_fd;
static long page;

static void die(const char *what) { perror(what); exit(1); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_region(uint32_t slot, uint64_t gpa, uint64_t size, void *hva) {
  struct kvm_userspace_memory_region r = { .slot = slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)hva };
  if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
}

static void *memfd_map(size_t size) {
  int fd = memfd_create("bench", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)size) < 0) die("memfd");
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  close(fd);
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: kvm-bench case iterations [slots]\n"); return 2; }
  const char *which = argv[1];
  long n = atol(argv[2]);
  long slots = argc > 3 ? atol(argv[3]) : 1;
  page = sysconf(_SC_PAGESIZE);
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm_fd < 0) die("KVM_CREATE_VM");
  void *mem = memfd_map((size_t)page * 8);
  uint64_t base = 0x100000000ull, moved = 0x200000000ull, t0, t1;

  if (!strcmp(which, "noop")) {
    set_region(0, base, page, mem);
    t0 = now_ns();
    for (long i = 0; i < n; i++) set_region(0, base, page, mem);
    t1 = now_ns();
  } else if (!strcmp(which, "add-delete")) {
    t0 = now_ns();
    for (long i = 0; i < n; i++) { set_region(0, base, page, mem); set_region(0, base, 0, mem); }
    t1 = now_ns();
  } else if (!strcmp(which, "move")) {
    /* `slots` mappings of one BAR, moved back and forth (ordered so siblings never collide). */
    for (long s = 0; s < slots; s++) set_region((uint32_t)s, base + (uint64_t)s * page, page, mem);
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
      uint64_t to = (i % 2 == 0) ? moved : base;
      for (long s = 0; s < slots; s++) set_region((uint32_t)s, to + (uint64_t)s * page, page, mem);
    }
    t1 = now_ns();
    n *= slots;
  } else if (!strcmp(which, "map-unmap")) {
    /* 6 BARs on memfd regions: memfd-backed mmap + slot, then slot delete + munmap. */
    int fds[6];
    for (int b = 0; b < 6; b++) { fds[b] = memfd_create("bar", MFD_CLOEXEC); if (ftruncate(fds[b], page * 4) < 0) die("ftruncate"); }
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
      void *maps[6];
      for (int b = 0; b < 6; b++) {
        maps[b] = mmap(NULL, (size_t)page * 4, PROT_READ | PROT_WRITE, MAP_SHARED, fds[b], 0);
        if (maps[b] == MAP_FAILED) die("mmap");
        set_region((uint32_t)b, base + (uint64_t)b * 0x100000, (uint64_t)page * 4, maps[b]);
      }
      for (int b = 5; b >= 0; b--) { set_region((uint32_t)b, base + (uint64_t)b * 0x100000, 0, maps[b]); munmap(maps[b], (size_t)page * 4); }
    }
    t1 = now_ns();
  } else if (!strcmp(which, "move-under-load")) {
    /* `slots` slots registered, then n moves of the last one. */
    for (long s = 0; s < slots; s++) set_region((uint32_t)s, base + (uint64_t)s * page, page, mem);
    uint64_t last = base + (uint64_t)(slots - 1) * page;
    t0 = now_ns();
    for (long i = 0; i < n; i++) set_region((uint32_t)(slots - 1), (i % 2 == 0) ? moved : last, page, mem);
    t1 = now_ns();
  } else {
    fprintf(stderr, "unknown case %s\n", which);
    return 2;
  }
  printf("{\"case\":\"%s\",\"nsPerOp\":%.1f}\n", which, (double)(t1 - t0) / (double)n);
  return 0;
}
