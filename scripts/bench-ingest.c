// Conntrack-entry generator for scripts/bench-ingest.mjs: sends COUNT UDP packets from SRC to
// DST, each a new flow (source port cycles through 4096 values, the destination port moves on
// every 4096 packets), through a raw socket with sendmmsg, optionally paced to RATE packets/s.
// Bounded by COUNT and by a 30 s deadline. Run inside the lab's client namespace only.
//   bench-ingest-gen SRC DST COUNT [RATE]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PKT 36 /* IPv4 20 + UDP 8 + 8 payload */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s SRC DST COUNT [RATE]\n", argv[0]);
    return 2;
  }
  struct in_addr src, dst;
  if (!inet_aton(argv[1], &src) || !inet_aton(argv[2], &dst)) return 2;
  long count = atol(argv[3]);
  double rate = argc > 4 ? atof(argv[4]) : 0;
  if (count <= 0 || count > 2000000) return 2;
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW); /* IPPROTO_RAW implies IP_HDRINCL */
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  static unsigned char pkts[BATCH][PKT];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = dst};
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < BATCH; i++) {
    struct iphdr *ip = (struct iphdr *)pkts[i];
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(PKT);
    ip->saddr = src.s_addr;
    ip->daddr = dst.s_addr;
    memcpy(pkts[i] + 28, "natwatch", 8);
    iov[i].iov_base = pkts[i];
    iov[i].iov_len = PKT;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof(to);
  }
  double t0 = now();
  long sent = 0;
  while (sent < count && now() - t0 < 30) {
    int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
    for (int i = 0; i < n; i++) {
      long k = sent + i;
      struct udphdr *u = (struct udphdr *)(pkts[i] + 20);
      u->source = htons(1024 + (k % 4096));
      u->dest = htons(10000 + (k / 4096));
      u->len = htons(PKT - 20);
      u->check = 0; /* optional for UDP over IPv4 */
    }
    int r = sendmmsg(fd, msgs, n, 0);
    if (r < 0) {
      perror("sendmmsg");
      usleep(1000);
      continue;
    }
    sent += r;
    if (rate > 0) {
      double ahead = sent / rate - (now() - t0);
      if (ahead > 0) usleep((useconds_t)(ahead * 1e6));
    }
  }
  double el = now() - t0;
  printf("{\"sent\":%ld,\"seconds\":%.3f,\"pps\":%.0f}\n", sent, el, sent / el);
  return 0;
}
