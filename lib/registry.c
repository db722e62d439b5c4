/* registry.c: a client of a Confluent-compatible schema registry over HTTP (libcurl): writer schemas by id, and our schema registered under a subject. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "reco.h"

#define TRIES 3 /* attempts when the registry does not answer */

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
	static int inited;
	struct registry *r;
	size_t n = strlen(url);

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "--registry: expected an http:// or https:// URL, not \"%s\"", url);
		return NULL;
	}
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = 1;
	}
	r = xcalloc(1, sizeof *r);
	while (n > 0 && url[n - 1] == '/')
		n--;
	r->url = xmalloc(n + 1);
	memcpy(r->url, url, n);
	r->url[n] = '\0';
	if (!(r->c = curl_easy_init()))
		die(EXIT_IO, "out of memory");
	return r;
}

void
registry_free(struct registry *r)
{
	if (!r)
		return;
	curl_easy_cleanup(r->c);
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
	h = curl_slist_append(h, "Accept: application/vnd.schemaregistry.v1+json, application/json");
	if (post)
		h = curl_slist_append(h, "Content-Type: application/vnd.schemaregistry.v1+json");
	for (int k = 0; k < TRIES; k++) {
		if (k) {
			struct timespec ts = { 0, 250000000L * k * k };
			nanosleep(&ts, NULL);
		}
		curl_easy_reset(r->c);
		r->body.n = 0;
		r->status = 0;
		curl_easy_setopt(r->c, CURLOPT_URL, url);
		curl_easy_setopt(r->c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(r->c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(r->c, CURLOPT_WRITEDATA, &r->body);
		curl_easy_setopt(r->c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
		curl_easy_setopt(r->c, CURLOPT_TIMEOUT_MS, 15000L);
		curl_easy_setopt(r->c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(r->c, CURLOPT_USERAGENT, "reco/" RECO_VERSION);
		if (post) {
			curl_easy_setopt(r->c, CURLOPT_POSTFIELDS, post);
			curl_easy_setopt(r->c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
		}
		rc = curl_easy_perform(r->c);
		if (rc == CURLE_OK) {
			curl_easy_getinfo(r->c, CURLINFO_RESPONSE_CODE, &r->status);
			if (r->status < 500)
				break;
		}
	}
	curl_slist_free_all(h);
	buf_putc(&r->body, '\0');
	r->body.n--;
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s: schema registry %s: %s", what, r->url,
			 curl_easy_strerror(rc));
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
	char *esc = curl_easy_escape(r->c, subject, 0), path[1024], what[600];
	json_t *body = json_pack("{ss}", "schema", schema), *j;
	char *text = json_dumps(body, JSON_COMPACT);
	int rc = -1;

	snprintf(path, sizeof path, "/subjects/%s/versions", esc ? esc : subject);
	snprintf(what, sizeof what, "registering the schema under subject %s", subject);
	curl_free(esc);
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
