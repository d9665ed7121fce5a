/**
 * server/media/files.c  The file thread: prompts in, recordings out
 *
 * Owns the prompt cache (by path, with the file's size, mtime and inode
 * checked at each play, least recently used out beyond CACHE_SIZE) and
 * the file thread's loop over the engine's jobs: a play's files read
 * and checked (wav.c) become a CMD_PLAY for the media thread, or the
 * play's error event naming the file; a recording is written and
 * reported. No loop ever waits for a disk. Exposes files_thread() in
 * media_priv.h. Uses wav.c and the engine's queues.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"


/* ------------------------------------------------------------------ *
 * The file thread
 * ------------------------------------------------------------------ */

enum { CACHE_SIZE = 64 };

struct cached {
	char *path;
	struct stat st;
	struct prompt *p;
	uint64_t used;
};

static struct prompt *cache_get(struct cached *cache, const char *path,
				char *problem, size_t sz, int *errp,
				uint64_t *clock)
{
	struct stat st;
	struct cached *c, *victim = &cache[0];
	struct prompt *p = NULL;
	size_t i;
	int err;

	if (!stat(path, &st)) {
		for (i = 0; i < CACHE_SIZE; i++) {
			c = &cache[i];
			if (c->path && !strcmp(c->path, path) &&
			    c->st.st_mtim.tv_sec == st.st_mtim.tv_sec &&
			    c->st.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
			    c->st.st_size == st.st_size &&
			    c->st.st_ino == st.st_ino) {
				c->used = ++*clock;
				return prompt_ref(c->p);
			}
		}
	}

	err = prompt_load(&p, path, problem, sz);
	if (err) {
		*errp = err;
		return NULL;
	}

	for (i = 0; i < CACHE_SIZE; i++) {
		if (!cache[i].path || cache[i].used < victim->used)
			victim = &cache[i];
		if (!cache[i].path)
			break;
	}
	victim->path = mem_deref(victim->path);
	prompt_unref(victim->p);
	victim->p = NULL;
	if (!str_dup(&victim->path, path)) {
		victim->st = st;
		victim->p = prompt_ref(p);
		victim->used = ++*clock;
	}

	return p;
}


static void job_run(struct media_engine *me, struct job *j,
		    struct cached *cache, uint64_t *clock)
{
	struct media_event ev;
	char problem[256] = "";
	struct cmd *c;
	size_t i;
	int err = 0;

	memset(&ev, 0, sizeof(ev));

	if (j->type == JOB_WRITE) {
		err = wav_write(j->path, j->samples, j->ns, problem,
				sizeof(problem));
		ev.type = MEDIA_EV_RECORD_END;
		ev.seq = j->seq;
		ev.err = err;
		ev.problem = problem;
		ev.dur_ms = (uint32_t)(j->ns / 8);
		engine_evt(me, j->sid, &ev);
		return;
	}

	c = cmd_new(CMD_PLAY, j->sid, j->seq);
	if (c)
		c->prompts = mem_zalloc(j->n * sizeof(*c->prompts), NULL);
	if (!c || !c->prompts) {
		err = ENOMEM;
		goto fail;
	}

	for (i = 0; i < j->n; i++) {
		c->prompts[i] = cache_get(cache, j->paths[i], problem,
					  sizeof(problem), &err, clock);
		if (!c->prompts[i])
			goto fail;
		c->n = i + 1;
	}

	engine_cmd(me, c);
	return;

 fail:
	mem_deref(c);
	ev.type = MEDIA_EV_PLAY_END;
	ev.seq = j->seq;
	ev.err = err ? err : ENOMEM;
	ev.problem = problem;
	engine_evt(me, j->sid, &ev);
}


void *files_thread(void *arg)
{
	struct media_engine *me = arg;
	struct cached *cache = calloc(CACHE_SIZE, sizeof(*cache));
	uint64_t clock = 0;
	size_t i;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&me->lock);
		while (list_isempty(&me->jobs) && !me->io_quit)
			pthread_cond_wait(&me->job_cond, &me->lock);
		if (list_isempty(&me->jobs)) {
			pthread_mutex_unlock(&me->lock);
			break;
		}
		j = list_ledata(list_head(&me->jobs));
		list_unlink(&j->le);
		pthread_mutex_unlock(&me->lock);

		if (cache)
			job_run(me, j, cache, &clock);
		mem_deref(j);
	}

	for (i = 0; cache && i < CACHE_SIZE; i++) {
		mem_deref(cache[i].path);
		prompt_unref(cache[i].p);
	}
	free(cache);

	return NULL;
}
