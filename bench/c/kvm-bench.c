/*
 * The C baseline for `npm run bench`: the same syscalls the library makes, timed the same way, under the
 * same conditions. It is a long-lived process driven over stdin, one line per command, so that (like the
 * library) it keeps one process and one VM per case across every round:
 *
 *   setup <case> <slots>   create the VM and the case's slot population   → "ok"
 *   run <iterations>       one timed round → "<wall> <user CPU> <system CPU>", ns per op
 *   teardown               close the VM and free the case's memory         → "ok"
 *
 * A VM fd cannot be shared with another process: KVM refuses VM ioctls from any mm but the creator's
 * (EIO), so the C side owns a VM of its own, populated identically.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define BASE 0x100000000ull
#define MOVED 0x200000000ull
#define BELOW_4G 0xc0000000ull
#define MMIO_GPA 0x8000ull
#define RESET_PAGE 0xfffff000ull

static int kvm_fd, vm_fd = -1, vcpu_fd = -1, device_fd = -1;
static long page;
static char which[64];
static long slots;
static void *mem, *code;
static struct kvm_run *run_page;
static size_t run_size;
static int bar_fds[6];
static void *low;
static int go_pipe[2] = { -1, -1 };
static volatile uint64_t *kick_page; /* [0] the TSC when the kicker wrote the eventfd, [1] TSC kHz */
static uint64_t tsc_offset; /* guest TSC = host TSC + tsc_offset (KVM_VCPU_TSC_OFFSET) */
static pid_t kicker_pid;

#define MSI_GSI 24
#define MSI_VECTOR 0x40
#define LAPIC_BASE 0xfee00000u
#define KICK_DELAY_NS 100000
#define STAMP_AT 0x500 /* where the guest's handler stores its RDTSC */
static int irq_efd = -1, dev_efd = -1, relay_running;
static volatile int relay_stop;
static pthread_t relay_thread;

static void kicker(int go_fd, int efd, volatile uint64_t *page) __attribute__((noreturn));

static void die(const char *what) { perror(what); exit(1); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* User and system CPU time of this process, ns. */
static void cpu_ns(uint64_t *user, uint64_t *sys) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *user = (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000u;
  *sys = (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000u;
}

static void set_region(uint32_t slot, uint64_t gpa, uint64_t size, void *hva) {
  struct kvm_userspace_memory_region r = { .slot = slot, .guest_phys_addr = gpa, .memory_size = size,
                                           .userspace_addr = (uint64_t)(uintptr_t)hva };
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

/* Creates vCPU 0 and maps its kvm_run. */
static void create_vcpu(void) {
  vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
  if (vcpu_fd < 0) die("KVM_CREATE_VCPU");
  run_size = (size_t)ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  run_page = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
  if (run_page == MAP_FAILED) die("mmap kvm_run");
}

/* KVM_RUN, retried when a signal interrupted it. */
static void kvm_run(void) {
  while (ioctl(vcpu_fd, KVM_RUN, 0) < 0)
    if (errno != EINTR) die("KVM_RUN");
}

/* The trapped-access guest: the same bytes bench/cases.ts writes (see trappedProgram there). */
static void setup_trapped(void) {
  static const uint8_t loop[] = { 0x66, 0xa1, 0x00, 0x80, 0x66, 0xa3, 0x04, 0x80, 0xeb, 0xf6 };
  static const uint8_t reset[] = { 0xe9, 0x0d, 0xf0 };
  code = memfd_map((size_t)page);
  memcpy(code, loop, sizeof loop);
  memcpy((uint8_t *)code + 0xff0, reset, sizeof reset);
  set_region(0, RESET_PAGE, (uint64_t)page, code);
  create_vcpu();
  device_fd = memfd_create("device", MFD_CLOEXEC);
  if (device_fd < 0 || ftruncate(device_fd, page) < 0) die("device memfd");
}

/* One trapped access per iteration: KVM_RUN until an MMIO exit, then pread/pwrite of the device memfd. */
static void trapped_access(void) {
  kvm_run();
  if (run_page->exit_reason != KVM_EXIT_MMIO) { fprintf(stderr, "exit %u\n", run_page->exit_reason); exit(1); }
  off_t offset = (off_t)(run_page->mmio.phys_addr - MMIO_GPA);
  ssize_t done = run_page->mmio.is_write ? pwrite(device_fd, run_page->mmio.data, run_page->mmio.len, offset)
                                         : pread(device_fd, run_page->mmio.data, run_page->mmio.len, offset);
  if (done != (ssize_t)run_page->mmio.len) die("device access");
}

/*
 * The same table the library's GsiRouter writes: x86DefaultIrqchipRoutes (per GSI 0-23 the IOAPIC pin,
 * and for 0-15 the PIC pin), then the vector's MSI route on MSI_GSI (fixed, physical, destination 0).
 */
static void set_msi_routes(void) {
  struct kvm_irq_routing *table = calloc(1, sizeof *table + 41 * sizeof table->entries[0]);
  if (!table) die("calloc");
  uint32_t n = 0;
  for (uint32_t gsi = 0; gsi < 24; gsi++) {
    table->entries[n++] = (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                                                          .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi } };
    if (gsi < 16)
      table->entries[n++] = (struct kvm_irq_routing_entry){
        .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
        .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, .pin = gsi % 8 } };
  }
  table->entries[n++] = (struct kvm_irq_routing_entry){ .gsi = MSI_GSI, .type = KVM_IRQ_ROUTING_MSI,
                                                        .u.msi = { .address_lo = LAPIC_BASE, .data = MSI_VECTOR } };
  table->nr = n;
  if (ioctl(vm_fd, KVM_SET_GSI_ROUTING, table) < 0) die("KVM_SET_GSI_ROUTING");
  free(table);
}

/* The relay thread of 'msi-relay': each signal of the device eventfd becomes a write of the vector's. */
static void *relay_main(void *unused) {
  (void)unused;
  uint64_t count, one = 1;
  while (read(dev_efd, &count, sizeof count) == sizeof count && !relay_stop)
    if (write(irq_efd, &one, sizeof one) != sizeof one) die("relay write");
  return NULL;
}

/*
 * The MSI guest (the same bytes as bench/irq-cases.ts msiProgram, which explains them): real mode, FS's
 * hidden base at the LAPIC page, SVR enabled by the guest, `sti; hlt`; vector 0x40's handler stores its RDTSC
 * at STAMP_AT, reports on port 0x10, then EOIs. The vector's eventfd has a KVM irqfd on MSI_GSI, routed as an
 * MSI to vector 0x40.
 * 'msi': the kicker writes that eventfd. 'msi-relay': the kicker writes a device eventfd that a relay
 * thread reads, writing the vector's eventfd in turn.
 */
static void setup_msi(int relay) {
  static const uint8_t init[] = { 0xbc, 0xf0, 0x0f, 0x64, 0x66, 0xc7, 0x06, 0xf0, 0x00, 0xff, 0x01, 0x00, 0x00,
                                  0xe6, 0x12, 0xfb, 0xf4, 0xeb, 0xfd };
  static const uint8_t handler[] = { 0x0f, 0x31, 0x66, 0xa3, 0x00, 0x05, 0x66, 0x89, 0x16, 0x04, 0x05, 0xe6, 0x10,
                                     0x64, 0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, 0xcf };
  static const uint8_t other[] = { 0xe6, 0x11, 0x64, 0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, 0xcf };
  static const uint8_t reset[] = { 0xe9, 0x0d, 0xf0 };
  if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  code = memfd_map((size_t)page);
  memcpy(code, init, sizeof init);
  memcpy((uint8_t *)code + 0x40, handler, sizeof handler);
  memcpy((uint8_t *)code + 0x60, other, sizeof other);
  memcpy((uint8_t *)code + 0xff0, reset, sizeof reset);
  low = memfd_map((size_t)page);
  for (int v = 0; v < 256; v++) {
    uint16_t entry[2] = { v == MSI_VECTOR ? 0xf040 : 0xf060, 0xf000 }; /* IVT: offset, segment */
    memcpy((uint8_t *)low + v * 4, entry, sizeof entry);
  }
  set_region(0, RESET_PAGE, (uint64_t)page, code);
  set_region(1, 0xff000, (uint64_t)page, code);
  set_region(2, 0, (uint64_t)page, low);
  create_vcpu();
  struct kvm_sregs sregs;
  if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.fs.base = LAPIC_BASE;
  if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_device_attr tsc = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uint64_t)(uintptr_t)&tsc_offset };
  if (ioctl(vcpu_fd, KVM_GET_DEVICE_ATTR, &tsc) < 0) die("KVM_GET_DEVICE_ATTR TSC offset");
  irq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* as MsixInterrupts makes a vector's eventfd */
  if (irq_efd < 0) die("eventfd");
  set_msi_routes();
  struct kvm_irqfd irqfd = { .fd = (uint32_t)irq_efd, .gsi = MSI_GSI };
  if (ioctl(vm_fd, KVM_IRQFD, &irqfd) < 0) die("KVM_IRQFD");
  kvm_run();
  if (run_page->exit_reason != KVM_EXIT_IO || run_page->io.port != 0x12) { fprintf(stderr, "msi guest: not ready\n"); exit(1); }
  if (relay) {
    dev_efd = eventfd(0, EFD_CLOEXEC);
    if (dev_efd < 0) die("eventfd");
  }
  kick_page = memfd_map((size_t)page);
  if (pipe(go_pipe) < 0) die("pipe");
  kicker_pid = fork(); /* before the relay thread: the child is single-threaded */
  if (kicker_pid < 0) die("fork");
  if (kicker_pid == 0) { close(go_pipe[1]); kicker(go_pipe[0], relay ? dev_efd : irq_efd, kick_page); }
  close(go_pipe[0]);
  if (relay) {
    relay_stop = 0;
    if (pthread_create(&relay_thread, NULL, relay_main, NULL)) die("pthread_create");
    relay_running = 1;
  }
}

/*
 * One interrupt: let the kicker go, run the guest (it halts in the kernel) until its handler reports; returns
 * TSC cycles from the kicker's eventfd write to the handler's first instruction (its RDTSC, in guest memory).
 */
static uint64_t irq_round_trip(void) {
  char go = 1;
  if (write(go_pipe[1], &go, 1) != 1) die("go");
  kvm_run();
  if (run_page->exit_reason == KVM_EXIT_IO && run_page->io.port == 0x10) {
    uint64_t stamp;
    memcpy(&stamp, (uint8_t *)low + STAMP_AT, sizeof stamp);
    return stamp - tsc_offset - kick_page[0];
  }
  if (run_page->exit_reason == KVM_EXIT_IO) fprintf(stderr, "msi guest: port 0x%x\n", run_page->io.port);
  else fprintf(stderr, "msi guest: exit %u\n", run_page->exit_reason);
  exit(1);
}

/*
 * The device side shared by both VMMs. It first measures the TSC frequency against CLOCK_MONOTONIC (20 ms)
 * into `page[1]` (kHz); then for each byte read on `go_fd` it waits KICK_DELAY_NS (the vCPU is halted by
 * then), notes the TSC in `page[0]` and writes the eventfd.
 */
static void kicker(int go_fd, int efd, volatile uint64_t *page) {
  uint64_t t0 = now_ns(), c0 = __rdtsc();
  while (now_ns() < t0 + 20000000) {}
  page[1] = (__rdtsc() - c0) * 1000000 / (now_ns() - t0);
  char go;
  while (read(go_fd, &go, 1) == 1) {
    uint64_t until = now_ns() + KICK_DELAY_NS;
    while (now_ns() < until) {}
    page[0] = __rdtsc();
    uint64_t one = 1;
    if (write(efd, &one, sizeof one) != sizeof one) die("eventfd write");
  }
  exit(0);
}

static void setup(void) {
  vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
  if (vm_fd < 0) die("KVM_CREATE_VM");
  mem = memfd_map((size_t)page);
  if (!strcmp(which, "noop")) {
    set_region(0, BASE, page, mem);
  } else if (!strcmp(which, "move") || !strcmp(which, "move-under-load")) {
    for (long s = 0; s < slots; s++) set_region((uint32_t)s, BASE + 2 * (uint64_t)s * page, page, mem);
  } else if (!strcmp(which, "map-unmap")) {
    for (int b = 0; b < 6; b++) {
      bar_fds[b] = memfd_create("bar", MFD_CLOEXEC);
      if (bar_fds[b] < 0 || ftruncate(bar_fds[b], page * 4) < 0) die("bar memfd");
    }
  } else if (!strcmp(which, "trapped")) {
    setup_trapped();
  } else if (!strcmp(which, "msi") || !strcmp(which, "msi-relay")) {
    setup_msi(!strcmp(which, "msi-relay"));
  } else if (strcmp(which, "add-delete")) {
    fprintf(stderr, "unknown case %s\n", which);
    exit(2);
  }
}

static void teardown(void) {
  if (!strcmp(which, "map-unmap"))
    for (int b = 0; b < 6; b++) close(bar_fds[b]);
  if (relay_running) {
    uint64_t one = 1;
    relay_stop = 1;
    if (write(dev_efd, &one, sizeof one) != sizeof one) die("relay stop");
    pthread_join(relay_thread, NULL);
    relay_running = 0;
  }
  if (kicker_pid > 0) {
    close(go_pipe[1]);
    waitpid(kicker_pid, NULL, 0);
    kicker_pid = 0;
    munmap((void *)kick_page, (size_t)page);
  }
  if (dev_efd >= 0) { close(dev_efd); dev_efd = -1; }
  if (irq_efd >= 0) { close(irq_efd); irq_efd = -1; }
  if (low) { munmap(low, (size_t)page); low = NULL; }
  if (vcpu_fd >= 0) { munmap(run_page, run_size); close(vcpu_fd); vcpu_fd = -1; }
  if (device_fd >= 0) { close(device_fd); device_fd = -1; }
  if (code) { munmap(code, (size_t)page); code = NULL; }
  munmap(mem, (size_t)page);
  close(vm_fd);
  vm_fd = -1;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The median of `n` values (sorted in place; the mean of the middle two when n is even). */
static uint64_t median_of(uint64_t *values, long n) {
  qsort(values, (size_t)n, sizeof *values, compare_u64);
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/* Returns the number of operations timed (a "move" of N slots is N operations). */
static long round_of(long n) {
  if (!strcmp(which, "noop")) {
    for (long i = 0; i < n; i++) set_region(0, BASE, page, mem);
  } else if (!strcmp(which, "add-delete")) {
    for (long i = 0; i < n; i++) { set_region(0, BASE, page, mem); set_region(0, BASE, 0, mem); }
  } else if (!strcmp(which, "move")) {
    /* the slots of one BAR (every other page), moved back and forth; the library moves them in the same order */
    static int at_moved;
    for (long i = 0; i < n; i++) {
      uint64_t to = at_moved ? BASE : MOVED;
      at_moved = !at_moved;
      for (long s = 0; s < slots; s++) set_region((uint32_t)s, to + 2 * (uint64_t)s * page, page, mem);
    }
    return n * slots;
  } else if (!strcmp(which, "move-under-load")) {
    static int at_moved;
    uint64_t last = BASE + 2 * (uint64_t)(slots - 1) * page;
    for (long i = 0; i < n; i++) {
      set_region((uint32_t)(slots - 1), at_moved ? last : MOVED, page, mem);
      at_moved = !at_moved;
    }
  } else if (!strcmp(which, "map-unmap")) {
    for (long i = 0; i < n; i++) {
      void *maps[6];
      for (int b = 0; b < 6; b++) {
        maps[b] = mmap(NULL, (size_t)page * 4, PROT_READ | PROT_WRITE, MAP_SHARED, bar_fds[b], 0);
        if (maps[b] == MAP_FAILED) die("mmap");
        set_region((uint32_t)b, BELOW_4G + (uint64_t)b * 0x100000, (uint64_t)page * 4, maps[b]);
      }
      for (int b = 5; b >= 0; b--) {
        set_region((uint32_t)b, BELOW_4G + (uint64_t)b * 0x100000, 0, maps[b]);
        munmap(maps[b], (size_t)page * 4);
      }
    }
  } else if (!strcmp(which, "trapped")) {
    for (long i = 0; i < n; i++) trapped_access();
  } else if (!strcmp(which, "msi") || !strcmp(which, "msi-relay")) {
    /* ns per op here is the round's median latency, eventfd write → the handler's first instruction */
    uint64_t *cycles = malloc((size_t)n * sizeof *cycles);
    if (!cycles) die("malloc");
    for (long i = 0; i < n; i++) cycles[i] = irq_round_trip();
    uint64_t median = median_of(cycles, n);
    free(cycles);
    return -(long)(median * 1000000 / kick_page[1] * (uint64_t)n);
  }
  return n;
}

/*
 * `kvm-bench --shared-vm-fd N`: tries one slot ioctl on a VM fd inherited from the parent and prints the
 * errno name, the evidence for why the baseline owns its own VM.
 */
static int try_shared_vm_fd(int fd) {
  struct kvm_userspace_memory_region r = { .slot = 0, .guest_phys_addr = BASE, .memory_size = 0 };
  int rc = ioctl(fd, KVM_SET_USER_MEMORY_REGION, &r);
  printf("%s\n", rc == 0 ? "OK" : errno == EIO ? "EIO" : strerror(errno));
  return 0;
}

/* The idle thread: it only shares the file table (see main). */
static void *idle_main(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

/* Pins the calling (main) thread to `cpu`, or lets it run anywhere again for cpu < 0. */
static void pin_to(long cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &set);
  } else {
    CPU_SET((int)cpu, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--shared-vm-fd")) return try_shared_vm_fd(atoi(argv[2]));
  /* `kvm-bench --kicker`: the library's kicker; fd 0 go bytes, fd 3 the eventfd, fd 4 a memfd for the time */
  if (argc == 2 && !strcmp(argv[1], "--kicker")) {
    /* fd 0 is a FIFO the parent holds open both ways: no EOF if the parent dies, so go with it */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() == 1) die("kicker: parent gone");
    void *when = mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, 4, 0);
    if (when == MAP_FAILED) die("mmap kick time");
    kicker(0, 3, when);
  }
  page = sysconf(_SC_PAGESIZE);
  /* Like Node, never single-threaded: Linux skips the file refcount in fdget() while a process's file table
   * is not shared (fs/file.c __fget_light), which a Node process never has, so the C side may not have it either. */
  pthread_t idle;
  if (pthread_create(&idle, NULL, idle_main, NULL)) die("pthread_create idle");
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0) die("/dev/kvm");
  setvbuf(stdout, NULL, _IOLBF, 0);
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    long n;
    if (sscanf(line, "setup %63s %ld", which, &slots) == 2) {
      setup();
      puts("ok");
    } else if (sscanf(line, "run %ld", &n) == 1) {
      uint64_t u0, s0, u1, s1;
      cpu_ns(&u0, &s0);
      uint64_t t0 = now_ns();
      long ops = round_of(n);
      uint64_t t1 = now_ns();
      cpu_ns(&u1, &s1);
      if (ops < 0) { t1 = t0 + (uint64_t)(-ops); ops = n; } /* a latency total, not the round's time */
      printf("%.1f %.1f %.1f\n", (double)(t1 - t0) / (double)ops, (double)(u1 - u0) / (double)ops, (double)(s1 - s0) / (double)ops);
    } else if (sscanf(line, "pin %ld", &n) == 1) {
      pin_to(n); /* n < 0: every CPU again */
      puts("ok");
    } else if (!strncmp(line, "teardown", 8)) {
      teardown();
      puts("ok");
    } else {
      fprintf(stderr, "bad command: %s", line);
      return 2;
    }
  }
  return 0;
}
