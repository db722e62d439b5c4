/* avro-old: write events as an Avro file with an older (or an incompatible) writer schema, through Avro C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "reco.h"

/* reco.Event before session, qty, price, query, source, attrs and v. */
static const char old_schema[] =
"{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"reco\",\"fields\":["
"{\"name\":\"event_id\",\"type\":\"string\"},"
"{\"name\":\"ts\",\"type\":\"long\"},"
"{\"name\":\"user\",\"type\":\"string\"},"
"{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
"\"symbols\":[\"view\",\"click\",\"search\",\"add_to_cart\","
"\"remove_from_cart\",\"purchase\",\"impression\"]}},"
"{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

/* The same, but with ts as a string: no reader of reco.Event can take it. */
static const char bad_schema[] =
"{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"reco\",\"fields\":["
"{\"name\":\"event_id\",\"type\":\"string\"},"
"{\"name\":\"ts\",\"type\":\"string\"},"
"{\"name\":\"user\",\"type\":\"string\"},"
"{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
"\"symbols\":[\"view\",\"click\",\"search\",\"add_to_cart\","
"\"remove_from_cart\",\"purchase\",\"impression\"]}},"
"{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

static void
usage(void)
{
	fputs("usage: avro-old [--incompatible] OUT.avro < events.ndjson\n",
	      stderr);
	exit(EXIT_USAGE);
}

/* Set a string value; Avro C counts the terminating NUL in the length. */
static int
set_str(avro_value_t *v, const struct str *s)
{
	char *tmp = xstrndup(s->p ? s->p : "", s->n);
	int rc = avro_value_set_string_len(v, tmp, s->n + 1);

	free(tmp);
	return rc;
}

/* Fill rec (of the old or the bad schema) from ev. Return 0 or -1. */
static int
fill(avro_value_t *rec, const struct event *ev, int incompatible)
{
	avro_value_t f, br;

	if (avro_value_get_by_name(rec, "event_id", &f, NULL) ||
	    set_str(&f, &ev->event_id))
		return -1;
	if (avro_value_get_by_name(rec, "ts", &f, NULL))
		return -1;
	if (incompatible) {
		char tmp[32];
		snprintf(tmp, sizeof tmp, "%lld", (long long)ev->ts);
		if (avro_value_set_string(&f, tmp))
			return -1;
	} else if (avro_value_set_long(&f, ev->ts))
		return -1;
	if (avro_value_get_by_name(rec, "user", &f, NULL) ||
	    set_str(&f, &ev->user))
		return -1;
	if (avro_value_get_by_name(rec, "type", &f, NULL) ||
	    avro_value_set_enum(&f, ev->type))
		return -1;
	if (avro_value_get_by_name(rec, "item", &f, NULL))
		return -1;
	if (ev->has & EV_ITEM) {
		if (avro_value_set_branch(&f, 1, &br) || set_str(&br, &ev->item))
			return -1;
	} else if (avro_value_set_branch(&f, 0, &br) || avro_value_set_null(&br))
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	int incompatible = 0, status = EXIT_OK;
	const char *path;
	avro_schema_t schema = NULL;
	avro_value_iface_t *iface = NULL;
	avro_value_t rec;
	avro_file_writer_t fw = NULL;
	struct event ev;
	char *line = NULL, err[512];
	size_t cap = 0;
	ssize_t r;
	unsigned long long lineno = 0;

	err_init("avro-old");
	if (argc > 1 && strcmp(argv[1], "--incompatible") == 0) {
		incompatible = 1;
		argc--;
		argv++;
	}
	if (argc != 2 || argv[1][0] == '-')
		usage();
	path = argv[1];
	const char *text = incompatible ? bad_schema : old_schema;
	if (avro_schema_from_json_length(text, strlen(text), &schema))
		die(EXIT_IO, "schema: %s", avro_strerror());
	iface = avro_generic_class_from_schema(schema);
	if (!iface || avro_generic_value_new(iface, &rec))
		die(EXIT_IO, "generic value: %s", avro_strerror());
	remove(path);
	if (avro_file_writer_create_with_codec(path, schema, &fw, "null", 0))
		die(EXIT_IO, "%s: %s", path, avro_strerror());
	event_init(&ev);
	while ((r = getline(&line, &cap, stdin)) >= 0) {
		size_t n = (size_t)r;
		lineno++;
		if (n && line[n - 1] == '\n')
			n--;
		if (n == 0)
			continue;
		if (event_parse_json(&ev, line, n, err, sizeof err)) {
			warn("-:%llu: %s", lineno, err);
			status = EXIT_DATA;
			continue;
		}
		avro_value_reset(&rec);
		if (fill(&rec, &ev, incompatible) ||
		    avro_file_writer_append_value(fw, &rec)) {
			warn("-:%llu: %s", lineno, avro_strerror());
			status = EXIT_IO;
			break;
		}
	}
	if (ferror(stdin)) {
		warn("standard input: read error:");
		status = EXIT_IO;
	}
	if (avro_file_writer_close(fw)) {
		warn("%s: %s", path, avro_strerror());
		status = EXIT_IO;
	}
	free(line);
	event_free(&ev);
	avro_value_decref(&rec);
	avro_value_iface_decref(iface);
	avro_schema_decref(schema);
	return status;
}
