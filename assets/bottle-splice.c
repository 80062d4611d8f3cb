/*
 * bottle-splice: copies one direction of an allowed connection inside the
 * egress gate, socket to socket through a pipe with splice(2), so the bytes
 * never enter user space. The gate (Node.js) hands it a tunnel's download
 * direction once the tunnel has proven bulky; policy, the upload direction,
 * the byte budget and the timers stay in the gate, which kills this process
 * to end a tunnel early.
 *
 *   bottle-splice GATE_PID
 *
 *   fd 3: the socket read from (the upstream)
 *   fd 4: the socket written to (the bottle's connection)
 *   fd 5: a pipe to the gate: the running total of bytes copied, one decimal
 *         number per line, at most every 100 ms, and once at the end. A total
 *         not yet reported when the copy waits is reported when its 100 ms are
 *         up, so the gate's count is never more than 100 ms behind. (Reporting
 *         at every wait woke the gate about 500 times a second.)
 *
 * Not fds 0-2: libuv makes a child's stdio blocking, and O_NONBLOCK belongs
 * to the socket both processes share, so the gate's own writes would block.
 *
 * Exit status: 0 the source ended (EOF; the gate half-closes the other side),
 * 2 reading the source failed, 3 writing the destination failed, 1 bad setup.
 * The sockets are non-blocking and shared with the gate, so this waits with
 * poll(2) and never changes their flags. It dies with the gate.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)
#define REPORT_NS 100000000LL
#define SOURCE 3
#define DEST 4
#define REPORT 5

static unsigned long long total, reported;
static long long last_report;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void report(int force) {
  if (total == reported) return;
  long long now = now_ns();
  if (!force && now - last_report < REPORT_NS) return;
  dprintf(REPORT, "%llu\n", total);
  reported = total;
  last_report = now;
}

static _Noreturn void finish(int status) {
  report(1);
  _exit(status);
}

/* Waits until fd is ready for `events`; a hang-up or error counts as ready (the next splice reports it).
 * While a total is unreported, wakes when its report is due and sends it. */
static void wait_for(int fd, short events) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int timeout = -1;
    if (total != reported) {
      long long due = last_report + REPORT_NS - now_ns();
      timeout = due > 0 ? (int)((due + 999999) / 1000000) : 0;
    }
    int n = poll(&p, 1, timeout);
    if (n > 0) return;
    if (n == 0) report(1);
    else if (errno != EINTR) finish(1);
  }
}

int main(int argc, char **argv) {
  /* argv[1]: the gate's pid. It may be PID 1 (the gate container's init), so "reparented to 1" proves nothing. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc != 2 || getppid() != (pid_t)atol(argv[1])) return 1; /* the gate is already gone */
  signal(SIGPIPE, SIG_IGN);
  int pipefd[2];
  if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) < 0) return 1;
  fcntl(pipefd[1], F_SETPIPE_SZ, CHUNK); /* best effort: a smaller pipe only means more calls */
  last_report = now_ns();
  for (;;) {
    ssize_t n = splice(SOURCE, NULL, pipefd[1], NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) finish(0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) finish(2);
      wait_for(SOURCE, POLLIN);
      continue;
    }
    while (n > 0) {
      ssize_t m = splice(pipefd[0], NULL, DEST, NULL, (size_t)n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        n -= m;
        total += (unsigned long long)m;
      } else if (m < 0 && errno == EAGAIN) {
        wait_for(DEST, POLLOUT);
      } else if (m < 0 && errno == EINTR) {
        continue;
      } else {
        finish(3);
      }
    }
    report(0);
  }
}
