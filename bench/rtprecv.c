/**
 * bench/rtprecv.c  The RTP receiver of bench/media_bench.py
 *
 *   rtprecv PORT WARMUP_S WINDOW_S
 *
 * Binds 127.0.0.1:PORT, drains everything for WARMUP_S seconds, then
 * for WINDOW_S seconds takes every packet's kernel arrival time
 * (SO_TIMESTAMPNS: this process's own scheduling does not count) and
 * keeps per stream (SSRC): packets, the sequence range (lost = range -
 * packets), and the deviation of each inter-arrival time from 20 ms
 * (consecutive sequence numbers only) in a histogram of 10 us bins.
 * Socket overflows (SO_RXQ_OVFL) in the window are counted apart: they
 * are this receiver's losses, not the sender's. Prints one line:
 *   streams=N expected=N lost=N ovfl=N p50=MS p99=MS p999=MS max=MS
 * Not a test: a benchmark tool; recvmmsg keeps up with 100k packets/s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

enum { NSTREAMS = 65536, BINS = 100000, BATCH = 64 };

struct stream {
	uint32_t ssrc;
	int used;
	uint32_t count;
	int64_t first, last;     /* unwrapped sequence numbers */
	uint16_t lseq;
	double lt;
};

static struct stream tab[NSTREAMS];
static uint64_t hist[BINS + 1];

static double now_mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static struct stream *find(uint32_t ssrc)
{
	uint32_t h = (ssrc * 2654435761u) % NSTREAMS;

	while (tab[h].used && tab[h].ssrc != ssrc)
		h = (h + 1) % NSTREAMS;
	tab[h].used = 1;
	tab[h].ssrc = ssrc;
	return &tab[h];
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	double warm, win, end, t0;
	int fd, one = 1, rcv = 8 << 20;
	uint32_t ovfl0 = 0, ovfl = 0;
	int have_ovfl0 = 0;
	static uint8_t bufs[BATCH][256];
	static uint8_t ctl[BATCH][256];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t nstreams = 0, expected = 0, lost = 0, total = 0;
	double maxdev = 0;
	int i;

	if (argc != 4)
		return fprintf(stderr, "usage: rtprecv PORT WARMUP WINDOW\n"), 2;
	warm = atof(argv[2]);
	win = atof(argv[3]);

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return perror("bind"), 1;
	{
		struct timeval tv = {0, 100000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}

	t0 = now_mono();
	end = t0 + warm + win;
	while (now_mono() < end) {
		int n, in_win = now_mono() >= t0 + warm;

		for (i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof(bufs[i]);
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = ctl[i];
			msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		for (i = 0; i < n; i++) {
			struct msghdr *m = &msgs[i].msg_hdr;
			struct cmsghdr *c;
			double t = -1;
			uint8_t *p = bufs[i];
			struct stream *s;
			uint16_t seq;
			int64_t useq;

			for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
				if (c->cmsg_level != SOL_SOCKET)
					continue;
				if (c->cmsg_type == SO_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(c), sizeof(ts));
					t = ts.tv_sec + ts.tv_nsec / 1e9;
				}
				else if (c->cmsg_type == SO_RXQ_OVFL) {
					memcpy(&ovfl, CMSG_DATA(c), 4);
					if (in_win && !have_ovfl0) {
						ovfl0 = ovfl;
						have_ovfl0 = 1;
					}
				}
			}
			if (!in_win || t < 0 || msgs[i].msg_len < 12)
				continue;
			++total;
			seq = (uint16_t)(p[2] << 8 | p[3]);
			s = find((uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 |
				 (uint32_t)p[10] << 8 | p[11]);
			if (!s->count) {
				s->first = s->last = seq;
				++nstreams;
			}
			else {
				int d = (int16_t)(seq - s->lseq);

				useq = s->last + d;
				if (d == 1) {
					double dev = (t - s->lt) * 1000 - 20;
					long b;

					if (dev < 0)
						dev = -dev;
					if (dev > maxdev)
						maxdev = dev;
					b = (long)(dev * 100);
					hist[b > BINS ? BINS : b]++;
				}
				if (useq > s->last)
					s->last = useq;
				if (useq < s->first)
					s->first = useq;
			}
			s->lseq = seq;
			s->lt = t;
			s->count++;
		}
	}

	{
		uint64_t n = 0, acc = 0;
		double p50 = 0, p99 = 0, p999 = 0;
		long b;

		for (b = 0; b <= BINS; b++)
			n += hist[b];
		for (b = 0; b <= BINS; b++) {
			acc += hist[b];
			if (!p50 && acc >= n * 0.5)
				p50 = b / 100.0 + 0.01;
			if (!p99 && acc >= n * 0.99)
				p99 = b / 100.0 + 0.01;
			if (!p999 && acc >= n * 0.999)
				p999 = b / 100.0 + 0.01;
		}
		for (i = 0; i < NSTREAMS; i++) {
			if (!tab[i].count)
				continue;
			expected += (uint64_t)(tab[i].last - tab[i].first + 1);
			lost += (uint64_t)(tab[i].last - tab[i].first + 1) -
				tab[i].count;
		}
		printf("streams=%llu expected=%llu lost=%llu ovfl=%u "
		       "p50=%.2f p99=%.2f p999=%.2f max=%.2f packets=%llu\n",
		       (unsigned long long)nstreams,
		       (unsigned long long)expected,
		       (unsigned long long)lost, ovfl - ovfl0, p50, p99, p999,
		       maxdev, (unsigned long long)total);
	}

	return 0;
}
