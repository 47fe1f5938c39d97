/*
 * The same no-op KVM_SET_USER_MEMORY_REGION loop in a single-threaded process and in one with a second
 * (idle) thread, as every Node process has. With the file table shared between threads, the kernel's
 * fdget() takes its slow path (reference counting), so the identical ioctl costs more there. Run:
 *
 *   cc -O2 -pthread bench/profile/threaded-ioctl.c -o /tmp/threaded-ioctl
 *   for i in 1 2 3; do /tmp/threaded-ioctl; /tmp/threaded-ioctl thread; done
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 7
#define CALLS 200000

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *idle(void *arg) {
  pause();
  return arg;
}

int main(int argc, char **argv) {
  (void)argv;
  int threaded = argc > 1;
  if (threaded) {
    pthread_t thread;
    pthread_create(&thread, NULL, idle, NULL);
  }
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  void *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  struct kvm_userspace_memory_region region = {
    .slot = 0, .guest_phys_addr = 1ull << 32, .memory_size = 4096, .userspace_addr = (uint64_t)(uintptr_t)mem,
  };
  if (vm < 0 || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    perror("KVM");
    return 1;
  }
  double best = 1e12;
  for (int r = 0; r < ROUNDS; r++) {
    uint64_t t0 = now_ns();
    for (int i = 0; i < CALLS; i++) ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region);
    double ns = (double)(now_ns() - t0) / CALLS;
    if (ns < best) best = ns;
  }
  printf("%s no-op KVM_SET_USER_MEMORY_REGION, best of %d rounds: %.0f ns\n",
         threaded ? "with an idle thread" : "single-threaded    ", ROUNDS, best);
  return 0;
}
