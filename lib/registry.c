/* registry.c: a client of a Confluent-compatible schema registry over HTTP (libcurl, loaded when first needed): writer schemas by id, and our schema registered under a subject. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "reco.h"

#define TRIES 3 /* attempts when the registry does not answer */

/*
 * libcurl, loaded by the first client: a tool that never asks a registry
 * does not map libcurl and the thirty libraries it brings (3 MB resident
 * and a few milliseconds of every start).
 */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	char *(*easy_escape)(CURL *, const char *, int);
	void (*free)(void *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} C;

static int
curl_load(char *err, size_t errlen)
{
	static const char *const libs[] = { "libcurl.so.4", "libcurl-gnutls.so.4" };
	static const char *const names[] = {
		"curl_global_init", "curl_easy_init", "curl_easy_cleanup",
		"curl_easy_reset", "curl_easy_setopt", "curl_easy_perform",
		"curl_easy_getinfo", "curl_easy_strerror", "curl_easy_escape",
		"curl_free", "curl_slist_append", "curl_slist_free_all"
	};
	void *slots[] = {
		&C.global_init, &C.easy_init, &C.easy_cleanup, &C.easy_reset,
		&C.easy_setopt, &C.easy_perform, &C.easy_getinfo,
		&C.easy_strerror, &C.easy_escape, &C.free, &C.slist_append,
		&C.slist_free_all
	};
	static void *lib;
	void *h = NULL;

	_Static_assert(sizeof slots / sizeof *slots == sizeof names / sizeof *names,
		       "a slot for each name");
	if (lib)
		return 0;
	for (size_t k = 0; k < sizeof libs / sizeof *libs && !h; k++)
		h = dlopen(libs[k], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "--registry: cannot load libcurl (%s): %s",
			 libs[0], dlerror());
		return -1;
	}
	for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
		void *f = dlsym(h, names[k]);
		if (!f) {
			snprintf(err, errlen, "--registry: libcurl has no %s", names[k]);
			dlclose(h);
			return -1;
		}
		/* POSIX: a function's address comes as a void *. */
		memcpy(slots[k], &f, sizeof f);
	}
	C.global_init(CURL_GLOBAL_DEFAULT);
	lib = h;
	return 0;
}

struct registry {
	char *url;   /* without a trailing slash */
	CURL *c;
	struct buf body;
	long status;
};

static size_t
on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;

	buf_put(b, p, size * n);
	return size * n;
}

/* A client of the registry at url (http:// or https://, with user:password@
 * for basic authentication); NULL with the reason in err. */
struct registry *
registry_new(const char *url, char *err, size_t errlen)
{
	struct registry *r;
	size_t n = strlen(url);

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "--registry: expected an http:// or https:// URL, not \"%s\"", url);
		return NULL;
	}
	if (curl_load(err, errlen))
		return NULL;
	r = xcalloc(1, sizeof *r);
	while (n > 0 && url[n - 1] == '/')
		n--;
	r->url = xmalloc(n + 1);
	memcpy(r->url, url, n);
	r->url[n] = '\0';
	if (!(r->c = C.easy_init()))
		die(EXIT_IO, "out of memory");
	return r;
}

void
registry_free(struct registry *r)
{
	if (!r)
		return;
	C.easy_cleanup(r->c);
	buf_free(&r->body);
	free(r->url);
	free(r);
}

/* The registry's own words on a failed request, if its body says them. */
static void
why_failed(struct registry *r, const char *what, char *err, size_t errlen)
{
	json_t *j = json_loadb(r->body.p ? r->body.p : "", r->body.n, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));

	snprintf(err, errlen, "%s: schema registry %s answered %ld%s%s", what,
		 r->url, r->status, msg ? ": " : "", msg ? msg : "");
	json_decref(j);
}

/*
 * One request: GET path, or POST body to it. Return 0 with the status in
 * r->status and the answer in r->body, or -1 (with err) when the registry
 * did not answer after TRIES attempts or answered 5xx each time.
 */
static int
request(struct registry *r, const char *path, const char *post,
	const char *what, char *err, size_t errlen)
{
	char url[2048];
	struct curl_slist *h = NULL;
	CURLcode rc = CURLE_OK;

	snprintf(url, sizeof url, "%s%s", r->url, path);
	h = C.slist_append(h, "Accept: application/vnd.schemaregistry.v1+json, application/json");
	if (post)
		h = C.slist_append(h, "Content-Type: application/vnd.schemaregistry.v1+json");
	for (int k = 0; k < TRIES; k++) {
		if (k) {
			struct timespec ts = { 0, 250000000L * k * k };
			nanosleep(&ts, NULL);
		}
		C.easy_reset(r->c);
		r->body.n = 0;
		r->status = 0;
		C.easy_setopt(r->c, CURLOPT_URL, url);
		C.easy_setopt(r->c, CURLOPT_HTTPHEADER, h);
		C.easy_setopt(r->c, CURLOPT_WRITEFUNCTION, on_body);
		C.easy_setopt(r->c, CURLOPT_WRITEDATA, &r->body);
		C.easy_setopt(r->c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
		C.easy_setopt(r->c, CURLOPT_TIMEOUT_MS, 15000L);
		C.easy_setopt(r->c, CURLOPT_NOSIGNAL, 1L);
		C.easy_setopt(r->c, CURLOPT_USERAGENT, "reco/" RECO_VERSION);
		if (post) {
			C.easy_setopt(r->c, CURLOPT_POSTFIELDS, post);
			C.easy_setopt(r->c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
		}
		rc = C.easy_perform(r->c);
		if (rc == CURLE_OK) {
			C.easy_getinfo(r->c, CURLINFO_RESPONSE_CODE, &r->status);
			if (r->status < 500)
				break;
		}
	}
	C.slist_free_all(h);
	buf_putc(&r->body, '\0');
	r->body.n--;
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s: schema registry %s: %s", what, r->url,
			 C.easy_strerror(rc));
		return -1;
	}
	if (r->status >= 500) {
		why_failed(r, what, err, errlen);
		return -1;
	}
	return 0;
}

/*
 * The writer schema of id (GET /schemas/ids/ID): 0 with *schema (JSON
 * text, to free), 1 if the registry has no such schema or it is not Avro
 * (err says so), -1 if the registry cannot be asked (err says why).
 */
int
registry_get(struct registry *r, uint32_t id, char **schema, char *err,
	     size_t errlen)
{
	char path[64], what[64];
	json_t *j;
	const char *s, *type;

	snprintf(path, sizeof path, "/schemas/ids/%u", id);
	snprintf(what, sizeof what, "schema id %u", id);
	if (request(r, path, NULL, what, err, errlen))
		return -1;
	if (r->status != 200) {
		why_failed(r, what, err, errlen);
		return r->status == 404 ? 1 : -1;
	}
	j = json_loadb(r->body.p, r->body.n, 0, NULL);
	s = json_string_value(json_object_get(j, "schema"));
	type = json_string_value(json_object_get(j, "schemaType"));
	if (!s) {
		snprintf(err, errlen, "%s: schema registry %s: the answer has no schema", what, r->url);
		json_decref(j);
		return -1;
	}
	if (type && strcmp(type, "AVRO") != 0) {
		snprintf(err, errlen, "%s is a %s schema, not Avro", what, type);
		json_decref(j);
		return 1;
	}
	*schema = xstrdup(s);
	json_decref(j);
	return 0;
}

/*
 * Register schema under subject (POST /subjects/SUBJECT/versions; the
 * registry answers the id it already has for the same schema). Return 0
 * with *id, or -1 with the reason in err.
 */
int
registry_register(struct registry *r, const char *subject, const char *schema,
		  uint32_t *id, char *err, size_t errlen)
{
	char *esc = C.easy_escape(r->c, subject, 0), path[1024], what[600];
	json_t *body = json_pack("{ss}", "schema", schema), *j;
	char *text = json_dumps(body, JSON_COMPACT);
	int rc = -1;

	snprintf(path, sizeof path, "/subjects/%s/versions", esc ? esc : subject);
	snprintf(what, sizeof what, "registering the schema under subject %s", subject);
	C.free(esc);
	json_decref(body);
	if (request(r, path, text, what, err, errlen))
		goto out;
	if (r->status != 200) {
		why_failed(r, what, err, errlen);
		goto out;
	}
	j = json_loadb(r->body.p, r->body.n, 0, NULL);
	json_t *v = json_object_get(j, "id");
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= 0x7fffffff) {
		*id = (uint32_t)json_integer_value(v);
		rc = 0;
	} else
		snprintf(err, errlen, "%s: schema registry %s: the answer has no id", what, r->url);
	json_decref(j);
out:
	free(text);
	return rc;
}
