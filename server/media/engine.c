/**
 * server/media/engine.c  The media engine: its threads, queues, pacing
 *
 * Owns struct media_engine: its threads, the queues between them, the
 * sessions' table and the port range. Three threads meet here:
 *
 *   SIP loop     makes sessions (session.c), sends commands, gets events
 *   media thread its own libre loop (re_thread_init/re_main): every
 *                stream's sockets and one timerfd ticking each ms
 *                (stream.c)
 *   file thread  reads and checks prompts, writes recordings
 *                (files.c): no loop ever blocks on a file
 *
 * Queues: a list under a mutex each, and for the two loops a libre
 * mqueue as the doorbell, rung when the list goes from empty to not
 * empty (so the pipe cannot fill: libre's mqueue_push fails with
 * EAGAIN on a full pipe, and reads one record per wakeup); the file
 * thread waits on a condition variable. What crosses is plain data
 * whose owner changes with the message (libre's mem references are not
 * atomic); prompts are shared with an atomic count (wav.c).
 *
 * Exposes media_engine_*() (media.h) and the queues (media_priv.h).
 * Uses libre's loop and mqueue; not rtp_sock (it binds a random port
 * on the calling thread's loop, where we bind our range on the SIP
 * loop and listen on the media thread).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <netinet/in.h>
#include <re.h>
#include "sipcore.h"
#include "media.h"
#include "media_priv.h"


enum {
	MAX_FDS = 65536,               /* the media loop's fd table       */
};


uint64_t media_now_ms(void)
{
	struct timespec t;

	(void)clock_gettime(CLOCK_MONOTONIC, &t);

	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}


/* ------------------------------------------------------------------ *
 * Queues
 * ------------------------------------------------------------------ */

static void cmd_destructor(void *arg)
{
	struct cmd *c = arg;
	size_t i;

	for (i = 0; i < c->n; i++)
		prompt_unref(c->prompts[i]);
	mem_deref(c->prompts);
	mem_deref(c->path);
	if (c->type == CMD_OPEN && c->fd[0] >= 0) {
		(void)close(c->fd[0]);
		(void)close(c->fd[1]);
	}
}


struct cmd *cmd_new(enum cmd_type type, uint32_t sid, uint32_t seq)
{
	struct cmd *c = mem_zalloc(sizeof(*c), cmd_destructor);

	if (!c)
		return NULL;
	c->type = type;
	c->sid = sid;
	c->seq = seq;
	c->fd[0] = c->fd[1] = -1;
	c->pt = c->pt_te = c->pt_rx_te = -1;

	return c;
}


void engine_cmd(struct media_engine *me, struct cmd *c)
{
	bool ring;

	pthread_mutex_lock(&me->lock);
	ring = list_isempty(&me->cmds);
	list_append(&me->cmds, &c->le, c);
	pthread_mutex_unlock(&me->lock);

	if (ring)
		(void)mqueue_push(me->cmd_mq, 0, NULL);
}


void engine_evt(struct media_engine *me, uint32_t sid,
		const struct media_event *ev)
{
	struct evt *e = mem_zalloc(sizeof(*e), NULL);
	bool ring;

	if (!e)
		return;
	e->sid = sid;
	e->ev = *ev;
	if (ev->problem)
		str_ncpy(e->problem, ev->problem, sizeof(e->problem));
	e->ev.problem = NULL;

	pthread_mutex_lock(&me->lock);
	ring = list_isempty(&me->evts);
	list_append(&me->evts, &e->le, e);
	pthread_mutex_unlock(&me->lock);

	if (ring)
		(void)mqueue_push(me->evt_mq, 0, NULL);
}


static void job_destructor(void *arg)
{
	struct job *j = arg;
	size_t i;

	for (i = 0; i < j->n; i++)
		mem_deref(j->paths[i]);
	mem_deref(j->paths);
	mem_deref(j->path);
	free(j->samples);
}


struct job *job_new(enum job_type type, uint32_t sid, uint32_t seq)
{
	struct job *j = mem_zalloc(sizeof(*j), job_destructor);

	if (!j)
		return NULL;
	j->type = type;
	j->sid = sid;
	j->seq = seq;

	return j;
}


void engine_job(struct media_engine *me, struct job *j)
{
	pthread_mutex_lock(&me->lock);
	list_append(&me->jobs, &j->le, j);
	pthread_cond_signal(&me->job_cond);
	pthread_mutex_unlock(&me->lock);
}


/* Take every queued element of l (under the lock) into out */
static void take_all(struct media_engine *me, struct list *l,
		     struct list *out)
{
	struct le *le;

	pthread_mutex_lock(&me->lock);
	*out = *l;
	list_init(l);
	pthread_mutex_unlock(&me->lock);

	/* each element names its list: now out */
	for (le = out->head; le; le = le->next)
		le->list = out;
}


static bool session_match(struct le *le, void *arg)
{
	return session_sid(le->data) == *(const uint32_t *)arg;
}


/* The SIP loop: events to their sessions (gone: dropped) */
static void evt_handler(int id, void *data, void *arg)
{
	struct media_engine *me = arg;
	struct list l;
	(void)id;
	(void)data;

	take_all(me, &me->evts, &l);
	while (!list_isempty(&l)) {
		struct evt *e = list_ledata(list_head(&l));
		struct le *le;

		list_unlink(&e->le);
		le = hash_lookup(me->sessions, e->sid, session_match, &e->sid);
		if (e->problem[0])
			e->ev.problem = e->problem;
		if (le)
			session_event(le->data, &e->ev);
		mem_deref(e);
	}
}


/* ------------------------------------------------------------------ *
 * The media thread
 * ------------------------------------------------------------------ */

static void cmd_handler(int id, void *data, void *arg)
{
	struct media_engine *me = arg;
	struct list l;
	(void)id;
	(void)data;

	take_all(me, &me->cmds, &l);
	while (!list_isempty(&l)) {
		struct cmd *c = list_ledata(list_head(&l));

		list_unlink(&c->le);
		if (c->type == CMD_QUIT)
			re_cancel();
		else
			stream_cmd(me, c);
		mem_deref(c);
	}
}


static void *media_thread(void *arg)
{
	struct media_engine *me = arg;
	int16_t beep[1600];
	size_t i;
	int err;

	err = re_thread_init();
	if (!err) {
		(void)fd_setsize(MAX_FDS);
		err = mqueue_alloc(&me->cmd_mq, cmd_handler, me);
	}
	if (!err)
		err = hash_alloc(&me->streams, 1024);
	if (!err) {
		me->tfd = timerfd_create(CLOCK_MONOTONIC,
					 TFD_NONBLOCK | TFD_CLOEXEC);
		if (me->tfd < 0)
			err = errno;
	}
	if (!err)
		err = fd_listen(me->tfd, FD_READ, stream_tick_handler, me);

	/* the beep before a recording: 200 ms of 1 kHz */
	for (i = 0; i < ARRAY_SIZE(beep); i++) {
		static const int16_t sine8[8] = {0, 5657, 8000, 5657, 0,
						 -5657, -8000, -5657};
		beep[i] = sine8[i % 8];
	}
	me->beep = prompt_from_linear(beep, ARRAY_SIZE(beep));

	pthread_mutex_lock(&me->lock);
	me->mt_err = err;
	me->mt_ready = true;
	pthread_cond_broadcast(&me->mt_cond);
	pthread_mutex_unlock(&me->lock);

	if (!err)
		(void)re_main(NULL);

	/* the commands left (the last is QUIT) */
	cmd_handler(0, NULL, me);
	streams_close(me);
	me->streams = mem_deref(me->streams);
	if (me->tfd >= 0) {
		fd_close(me->tfd);
		(void)close(me->tfd);
	}
	me->cmd_mq = mem_deref(me->cmd_mq);
	prompt_unref(me->beep);
	me->beep = NULL;
	re_thread_close();

	return NULL;
}


/* ------------------------------------------------------------------ *
 * The engine (the SIP loop's side)
 * ------------------------------------------------------------------ */

static void flush_list(struct list *l)
{
	while (!list_isempty(l)) {
		void *d = list_ledata(list_head(l));

		list_unlink(list_head(l));
		mem_deref(d);
	}
}


static void engine_destructor(void *arg)
{
	struct media_engine *me = arg;

	if (me->mstarted) {
		struct cmd *c = cmd_new(CMD_QUIT, 0, 0);

		if (c)
			engine_cmd(me, c);
		else
			(void)mqueue_push(me->cmd_mq, 0, NULL);
		(void)pthread_join(me->mthread, NULL);

		/* how the media thread kept time (ticks are 1 ms apart) */
		slog(me->stalls ? LOG_INFO : LOG_DEBUG, "media", "timing",
		     NULL, "tick_gap_max_ms=%llu stalls=%u",
		     (unsigned long long)me->gap_max, me->stalls);
	}
	if (me->iostarted) {
		pthread_mutex_lock(&me->lock);
		me->io_quit = true;
		pthread_cond_signal(&me->job_cond);
		pthread_mutex_unlock(&me->lock);
		(void)pthread_join(me->iothread, NULL);
	}

	flush_list(&me->cmds);
	flush_list(&me->jobs);
	flush_list(&me->evts);
	me->evt_mq = mem_deref(me->evt_mq);
	me->sessions = mem_deref(me->sessions);
	mem_deref(me->dir_prompts);
	mem_deref(me->dir_rec);
	pthread_cond_destroy(&me->job_cond);
	pthread_cond_destroy(&me->mt_cond);
	pthread_mutex_destroy(&me->lock);
}


int media_engine_alloc(struct media_engine **mep)
{
	struct media_engine *me;
	int err;

	if (!mep)
		return EINVAL;

	me = mem_zalloc(sizeof(*me), engine_destructor);
	if (!me)
		return ENOMEM;
	/* priority inheritance: the media thread may run at a real-time
	 * priority (sip.media{realtime = true}) and must not wait behind a
	 * preempted SIP loop or file thread holding the queues' lock */
	{
		pthread_mutexattr_t ma;

		pthread_mutexattr_init(&ma);
		(void)pthread_mutexattr_setprotocol(&ma,
						    PTHREAD_PRIO_INHERIT);
		pthread_mutex_init(&me->lock, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	pthread_cond_init(&me->job_cond, NULL);
	pthread_cond_init(&me->mt_cond, NULL);
	me->tfd = -1;
	me->port_min = me->port_next = MEDIA_PORT_MIN;
	me->port_max = MEDIA_PORT_MAX;

	err = hash_alloc(&me->sessions, 256);
	if (!err)
		err = mqueue_alloc(&me->evt_mq, evt_handler, me);
	if (err)
		goto out;

	err = pthread_create(&me->mthread, NULL, media_thread, me);
	if (err)
		goto out;
	me->mstarted = true;
	(void)pthread_setname_np(me->mthread, "sipstack-media");

	pthread_mutex_lock(&me->lock);
	while (!me->mt_ready)
		pthread_cond_wait(&me->mt_cond, &me->lock);
	err = me->mt_err;
	pthread_mutex_unlock(&me->lock);
	if (err)
		goto out;

	err = pthread_create(&me->iothread, NULL, files_thread, me);
	if (err)
		goto out;
	me->iostarted = true;
	(void)pthread_setname_np(me->iothread, "sipstack-files");

 out:
	if (err)
		mem_deref(me);
	else
		*mep = me;

	return err;
}


int media_engine_set_ports(struct media_engine *me, uint16_t min,
			   uint16_t max)
{
	if (!me || min < 1024 || max <= min)
		return EINVAL;
	if (min & 1)
		++min;
	if (max - min < 1)
		return EINVAL;

	me->port_min = me->port_next = min;
	me->port_max = max;

	return 0;
}


int media_engine_set_dirs(struct media_engine *me, const char *prompts,
			  const char *recordings)
{
	char *p = NULL, *r = NULL;

	if (!me)
		return EINVAL;
	if ((prompts && *prompts && str_dup(&p, prompts)) ||
	    (recordings && *recordings && str_dup(&r, recordings))) {
		mem_deref(p);
		return ENOMEM;
	}
	mem_deref(me->dir_prompts);
	mem_deref(me->dir_rec);
	me->dir_prompts = p;
	me->dir_rec = r;

	return 0;
}


int engine_path(const struct media_engine *me, bool rec, const char *path,
		char **outp)
{
	const char *dir = rec ? me->dir_rec : me->dir_prompts;

	if (path[0] == '/' || !dir)
		return str_dup(outp, path);

	return re_sdprintf(outp, "%s/%s", dir, path);
}


int media_engine_set_realtime(struct media_engine *me, bool rt)
{
	struct sched_param sp;

	if (!me || !me->mstarted)
		return EINVAL;
	memset(&sp, 0, sizeof(sp));
	sp.sched_priority = rt ? 10 : 0;

	return pthread_setschedparam(me->mthread, rt ? SCHED_FIFO :
				     SCHED_OTHER, &sp);
}


uint32_t media_engine_count(const struct media_engine *me)
{
	return me ? me->count : 0;
}


int media_engine_debug(struct re_printf *pf, const struct media_engine *me)
{
	if (!me)
		return 0;

	return re_hprintf(pf, "media: sessions=%u ports=%u-%u", me->count,
			  me->port_min, me->port_max);
}


uint32_t engine_session_add(struct media_engine *me, struct le *le,
			    void *ms)
{
	uint32_t sid = ++me->next_sid;

	if (!sid)
		sid = ++me->next_sid;
	hash_append(me->sessions, sid, le, ms);
	++me->count;

	return sid;
}


void engine_session_del(struct media_engine *me, struct le *le)
{
	hash_unlink(le);
	--me->count;
}


static int bind_port(const struct sa *laddr, uint16_t port)
{
	struct sa a = *laddr;
	int fd = socket(sa_af(laddr), SOCK_DGRAM | SOCK_NONBLOCK |
			SOCK_CLOEXEC, IPPROTO_UDP);

	if (fd < 0)
		return -1;
	sa_set_port(&a, port);
	if (bind(fd, &a.u.sa, a.len)) {
		(void)close(fd);
		return -1;
	}

	return fd;
}


int engine_ports(struct media_engine *me, const struct sa *laddr, int fd[2],
		 uint16_t *portp)
{
	uint32_t pairs = (uint32_t)(me->port_max - me->port_min + 1) / 2;
	uint32_t i;

	for (i = 0; i < pairs; i++) {
		uint16_t p = me->port_next;

		me->port_next = (uint16_t)(p + 2);
		if (me->port_next + 1 > me->port_max || me->port_next < p)
			me->port_next = me->port_min;

		fd[0] = bind_port(laddr, p);
		if (fd[0] < 0)
			continue;
		fd[1] = bind_port(laddr, (uint16_t)(p + 1));
		if (fd[1] < 0) {
			(void)close(fd[0]);
			continue;
		}
		*portp = p;
		return 0;
	}

	return EADDRINUSE;
}
