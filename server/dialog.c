/**
 * server/dialog.c  SIP dialogs and the dialog table
 *
 * Owns struct dialog_table (a hash of dialogs keyed by Call-ID, local
 * tag and remote tag, RFC 3261 §12) and the identity part of struct
 * dialog. Exposes dialog_*() in sipstack.h. The state machine, route set
 * and CSeq handling of a dialog come with the calls work; this file is
 * the O(1) lookup they stand on. Never calls into Lua.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"


struct dialog_table {
	struct hash *ht;
	uint32_t count;
};

struct dialog {
	struct le he;                /* in dialog_table.ht            */
	struct dialog_table *table;  /* not a reference: table outlives */
	char *callid;
	char *ltag;
	char *rtag;
};


static void table_destructor(void *arg)
{
	struct dialog_table *t = arg;

	/* dialogs still listed hold no reference on the table: unlink */
	hash_flush(t->ht);
	mem_deref(t->ht);
}


int dialog_table_alloc(struct dialog_table **tp, uint32_t buckets)
{
	struct dialog_table *t;
	int err;

	if (!tp || !buckets)
		return EINVAL;

	t = mem_zalloc(sizeof(*t), table_destructor);
	if (!t)
		return ENOMEM;

	err = hash_alloc(&t->ht, buckets);
	if (err)
		mem_deref(t);
	else
		*tp = t;

	return err;
}


uint32_t dialog_table_count(const struct dialog_table *t)
{
	return t ? t->count : 0;
}


/* The key hashes Call-ID and local tag only: the remote tag of an early
 * dialog changes when the UAS answers, and a lookup must still land in
 * the same bucket. */
static uint32_t key_hash(const struct pl *callid, const struct pl *ltag)
{
	return hash_joaat_pl(callid) ^ hash_joaat_pl(ltag);
}


struct lookup {
	const struct pl *callid, *ltag, *rtag;
};


static bool cmp_handler(struct le *le, void *arg)
{
	const struct dialog *dlg = le->data;
	const struct lookup *lk = arg;

	return !pl_strcmp(lk->callid, dlg->callid) &&
		!pl_strcmp(lk->ltag, dlg->ltag) &&
		(!lk->rtag || !pl_strcmp(lk->rtag, dlg->rtag));
}


struct dialog *dialog_table_find(const struct dialog_table *t,
				 const struct pl *callid,
				 const struct pl *ltag, const struct pl *rtag)
{
	struct lookup lk = {callid, ltag, rtag};

	if (!t || !pl_isset(callid) || !pl_isset(ltag))
		return NULL;

	return list_ledata(hash_lookup(t->ht, key_hash(callid, ltag),
				       cmp_handler, &lk));
}


static void dialog_destructor(void *arg)
{
	struct dialog *dlg = arg;

	if (dlg->table && dlg->he.list) {
		hash_unlink(&dlg->he);
		--dlg->table->count;
	}

	mem_deref(dlg->callid);
	mem_deref(dlg->ltag);
	mem_deref(dlg->rtag);
}


int dialog_alloc(struct dialog **dlgp, struct dialog_table *t,
		 const struct pl *callid, const struct pl *ltag,
		 const struct pl *rtag)
{
	struct dialog *dlg;
	int err;

	if (!dlgp || !t || !pl_isset(callid) || !pl_isset(ltag))
		return EINVAL;

	if (dialog_table_find(t, callid, ltag, rtag))
		return EEXIST;

	dlg = mem_zalloc(sizeof(*dlg), dialog_destructor);
	if (!dlg)
		return ENOMEM;

	err  = pl_strdup(&dlg->callid, callid);
	err |= pl_strdup(&dlg->ltag, ltag);
	err |= rtag ? pl_strdup(&dlg->rtag, rtag) : str_dup(&dlg->rtag, "");
	if (err) {
		mem_deref(dlg);
		return ENOMEM;
	}

	dlg->table = t;
	hash_append(t->ht, key_hash(callid, ltag), &dlg->he, dlg);
	++t->count;

	*dlgp = dlg;

	return 0;
}


const char *dialog_callid(const struct dialog *dlg)
{
	return dlg ? dlg->callid : NULL;
}


int dialog_debug(struct re_printf *pf, const struct dialog *dlg)
{
	if (!dlg)
		return 0;

	return re_hprintf(pf, "dialog callid=%s ltag=%s rtag=%s",
			  dlg->callid, dlg->ltag, dlg->rtag);
}
