/* tool.c: what every tool shares: options, output, rejects, stats, metrics, progress. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "reco.h"

#define REJECT_MSGS 10        /* messages shown on stderr without -v */
#define METRICS_EVERY 5.0     /* seconds between --metrics rewrites */

static const struct option common_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "output", required_argument, NULL, 'o' },
	{ "input-format", required_argument, NULL, 'I' },
	{ "output-format", required_argument, NULL, 'O' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "rejects", required_argument, NULL, OPT_REJECTS },
	{ "max-rejects", required_argument, NULL, OPT_MAX_REJECTS },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "schema", optional_argument, NULL, OPT_SCHEMA },
	{ "codec", required_argument, NULL, OPT_CODEC },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "shard-by", required_argument, NULL, OPT_SHARD_BY },
	{ "options", no_argument, NULL, OPT_OPTIONS },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "max-initial-rejects", required_argument, NULL, OPT_MAX_INITIAL_REJECTS },
	{ "registry", required_argument, NULL, OPT_REGISTRY },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "message-delimiter", required_argument, NULL, OPT_MSG_DELIM },
};
#define NCOMMON (sizeof common_opts / sizeof common_opts[0])

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The labels of the reject reasons, in the order of enum reject_reason. */
const char *const reject_reason_names[RJ_N] = {
	[RJ_NONE] = "none",
	[RJ_BAD_JSON] = "bad_json",
	[RJ_BAD_CSV] = "bad_csv",
	[RJ_BAD_ACCESS_LOG] = "bad_access_log",
	[RJ_BAD_TIMESTAMP] = "bad_timestamp",
	[RJ_BAD_NUMBER] = "bad_number",
	[RJ_NEGATIVE] = "negative",
	[RJ_MISSING_FIELD] = "missing_field",
	[RJ_MISSING_ITEM] = "missing_item",
	[RJ_UNKNOWN_TYPE] = "unknown_type",
	[RJ_INVALID_UTF8] = "invalid_utf8",
	[RJ_INVALID_EVENT] = "invalid_event",
	[RJ_UNEXPECTED_FIELD] = "unexpected_field",
	[RJ_LINE_TOO_LONG] = "line_too_long",
	[RJ_FUTURE] = "future",
	[RJ_TOO_OLD] = "too_old",
	[RJ_LATE] = "late",
	[RJ_BOT] = "bot",
	[RJ_INVALID_PROFILE] = "invalid_profile",
	[RJ_POSITION_JUMP] = "position_jump",
	[RJ_BAD_AVRO] = "bad_avro",
	[RJ_UNKNOWN_SCHEMA] = "unknown_schema",
	[RJ_INCOMPATIBLE_SCHEMA] = "incompatible_schema",
	[RJ_DELIMITER] = "delimiter_in_message",
};

/* Return FMT_NDJSON, FMT_AVRO, FMT_AUTO, or -1. */
int
fmt_parse(const char *s)
{
	if (strcmp(s, "ndjson") == 0 || strcmp(s, "json") == 0)
		return FMT_NDJSON;
	if (strcmp(s, "avro") == 0)
		return FMT_AVRO;
	if (strcmp(s, "auto") == 0)
		return FMT_AUTO;
	if (strcmp(s, "confluent") == 0)
		return FMT_CONFLUENT;
	if (strcmp(s, "avro-single") == 0)
		return FMT_AVRO_SINGLE;
	return -1;
}

/* Set the defaults; name is the program name ("reco-ingest"), usage the
 * text -h prints. */
void
tool_init(struct tool *t, const char *name, const char *usage)
{
	memset(t, 0, sizeof *t);
	t->name = name;
	t->usage = usage;
	t->in_fmt = FMT_AUTO;
	t->out_fmt = FMT_NDJSON;
	t->max_rejects = -1;
	t->max_initial_rejects = 1000;
	t->max_line = 1 << 20;
	t->progress = -1;
	t->codec = CODEC_NULL;
	err_init(name);
	t->m.tool = xstrdup(strncmp(name, "reco-", 5) == 0 ? name + 5 : name);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	t->m.start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (char *p = t->m.tool; *p; p++)
		if (*p == '-')
			*p = '_';
	/* A closed output ends the tool through its own exit path (quietly,
	 * status 141), so that it can save what it applied. */
	signal(SIGPIPE, SIG_IGN);
}

/* Print a usage error and a hint; return EXIT_USAGE (2), also kept in
 * t->status, for the tool to exit with. */
int
tool_usage_msg(struct tool *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", t->name);
	t->status = EXIT_USAGE;
	return EXIT_USAGE;
}

/* A number option; return -1 after a usage error (t->status is 2). */
static int
num_arg(struct tool *t, const char *opt, const char *arg, long long min,
	long long *v)
{
	char *end;

	*v = strtoll(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || *v < min) {
		tool_usage_msg(t, "%s: bad number \"%s\"", opt, arg);
		return -1;
	}
	return 0;
}

/*
 * --shard I/N: I and N plain decimal numbers, 0 <= I < N <= SHARD_MAX. With
 * N 1 there is one shard, every user is in it, and nothing changes.
 */
static int
shard_arg(struct tool *t, const char *arg)
{
	unsigned long v[2];
	const char *p = arg;

	if (t->no_input || t->no_events)
		return tool_usage_msg(t, "--shard: %s reads no events to shard", t->name);
	for (int k = 0; k < 2; k++) {
		char *end;
		if (*p < '0' || *p > '9')
			goto bad;
		v[k] = strtoul(p, &end, 10);
		if (end - p > 5 || *end != (k == 0 ? '/' : '\0'))
			goto bad;
		p = end + 1;
	}
	if (v[1] < 1 || v[1] > SHARD_MAX)
		return tool_usage_msg(t, "--shard %s: N must be from 1 to %d", arg,
				      SHARD_MAX);
	if (v[0] >= v[1])
		return tool_usage_msg(t, "--shard %s: I must be below N, from 0 to %lu",
				      arg, v[1] - 1);
	t->shard_i = (uint32_t)v[0];
	t->shard_n = (uint32_t)v[1];
	t->shard_tag[0] = '\0';
	if (t->shard_n > 1)
		snprintf(t->shard_tag, sizeof t->shard_tag, "#%u/%u",
			 (unsigned)t->shard_i, (unsigned)t->shard_n);
	return 0;
bad:
	return tool_usage_msg(t, "--shard: expected I/N, shard I of N, such as 2/4, not \"%s\"",
			      arg);
}

/* The shard of a user among nshards: the contract of --shard and
 * --shard-by. */
uint32_t
shard_of(int by, const char *user, size_t n, uint32_t nshards)
{
	if (nshards <= 1)
		return 0;
	switch (by) {
	case SHARD_BY_MURMUR2:
		return (murmur2_kafka(user, n) & 0x7fffffffu) % nshards;
	case SHARD_BY_CRC32:
		return (uint32_t)(crc32_any(0, user, n) % nshards);
	default:
		return (uint32_t)(hash64(user, n, SHARD_SEED) % nshards);
	}
}

/* Return 1 if the user is in the tool's shard (always without --shard). */
int
tool_in_shard(const struct tool *t, const char *user, size_t n)
{
	return t->shard_n <= 1 || shard_of(t->shard_by, user, n, t->shard_n) == t->shard_i;
}

/* Return 1 if the event's user is in the tool's shard, else count the event
 * as dropped (other_shard) and return 0. */
int
tool_shard_keep(struct tool *t, const struct event *ev)
{
	if (tool_in_shard(t, ev->user.p, ev->user.n))
		return 1;
	tool_drop(t, "other_shard");
	return 0;
}

/* Flush standard output after -h, -V or --schema; return the status. */
static int
stdout_done(struct tool *t)
{
	if (fflush(stdout) || ferror(stdout)) {
		if (errno == EPIPE)
			return t->status = EXIT_PIPE;
		warn("standard output: write error:");
		return t->status = EXIT_IO;
	}
	return t->status = EXIT_OK;
}

/*
 * --schema[=WHICH]: print the text of the schema named WHICH among the n
 * of names (the first one without WHICH). Return the exit status: 0, 2 for
 * an unknown name (a usage error), 3 if standard output fails.
 */
int
tool_schema_print(struct tool *t, const char *which, const char *const names[],
		  const char *const texts[], size_t n)
{
	char list[128] = "";
	size_t k;

	for (k = 0; k < n && which && strcmp(which, names[k]) != 0; k++)
		;
	if (k == n) {
		for (size_t j = 0; j < n; j++)
			snprintf(list + strlen(list), sizeof list - strlen(list),
				 "%s%s", j == 0 ? "" : j + 1 == n ? " or " : ", ",
				 names[j]);
		return tool_usage_msg(t, "--schema: expected %s, not \"%s\"", list, which);
	}
	fputs(texts[which ? k : 0], stdout);
	return stdout_done(t);
}

/* The common options' help, after each tool's own. */
static const char help_input[] =
"  -I, --input-format FMT   ndjson, avro or auto (default); confluent or\n"
"                           avro-single: Avro messages, each after its\n"
"                           4-byte length (kcat -C -f '%R%s')\n";
static const char help_messages[] =
"      --registry URL       the schema registry of confluent messages\n"
"      --message-delimiter D  Avro messages end with D, in kcat's\n"
"                           escapes (kcat -D D), not after their length\n";
static const char help_rejects[] =
"      --rejects FILE       write rejected records to FILE\n"
"      --max-rejects N      stop with status 1 after more than N rejects\n"
"      --max-initial-rejects N  stop with status 1 if the first N records\n"
"                           are all rejected (default 1000, 0: never)\n";
static const char help_max_line[] =
"      --max-line N         longest input line in bytes (default 1048576)\n";
static const char help_output[] =
"  -o, --output FILE        write to FILE instead of standard output\n";
static const char help_events_out[] =
"  -O, --output-format FMT  ndjson (default), avro, or one Avro record per\n"
"                           message: confluent (registered with\n"
"                           --registry) or avro-single\n"
"      --codec C            Avro codec: null (default) or deflate\n"
"      --key FIELD          write KEY<TAB>JSON lines (kcat -K '\\t')\n"
"      --subject NAME       where -O confluent registers its schema\n"
"                           (default: the record's full name)\n";
static const char help_shard[] =
"      --shard I/N          only the events of shard I of N of the users\n"
"      --shard-by P         the users' shards: hash (default), murmur2 (as\n"
"                           Kafka's Java clients partition keys; also\n"
"                           kafka) or crc32 (as kcat and librdkafka do by\n"
"                           default)\n";
static const char help_schema[] =
"      --schema[=json|avro] print the schema of the records and exit\n";
static const char help_rest[] =
"      --stats              print record counts on standard error at exit\n"
"      --metrics FILE       write Prometheus text metrics to FILE\n"
"      --progress, --no-progress  a live progress line on standard error\n"
"  -q, --quiet              no messages but fatal errors\n"
"  -v, --verbose            more messages\n"
"      --config FILE        options from FILE before the command line's\n"
"                           (default: $RECO_CONFIG, if set)\n"
"      --options            print the long options, for shell completion\n"
"  -h, --help               print this help and exit\n"
"  -V, --version            print the version and exit\n";

/* Every option of the tool being parsed: the common ones, then its own. */
static struct option all_opts[128];

/* Whether the tool has a use for the long option name (see common_opt). */
static int
applies(const struct tool *t, const char *name)
{
	static const char *const events_out[] = { "output-format", "codec", "key",
						  "subject", NULL };
	static const char *const rejects[] = { "input-format", "rejects", "max-rejects",
					       "max-initial-rejects", NULL };
	static const char *const messages[] = { "registry", "message-delimiter", NULL };
	static const char *const input[] = { "input-format", "rejects", "max-rejects",
					     "max-initial-rejects", "max-line", "shard",
					     "shard-by", NULL };
	static const char *const shard[] = { "shard", "shard-by", NULL };
	const char *const *no[5] = { t->writes ? events_out : NULL,
				     t->no_rejects ? rejects : NULL,
				     t->no_input ? input : NULL,
				     t->no_events ? shard : NULL,
				     t->writes && (t->no_input || t->no_rejects)
					     ? messages : NULL };

	for (int k = 0; k < 5; k++)
		for (size_t i = 0; no[k] && no[k][i]; i++)
			if (strcmp(name, no[k][i]) == 0)
				return 0;
	return 1;
}

/* --options: the long options, one a line, "=" after those that take a
 * value (for shell completion). */
static void
print_options(const struct tool *t)
{
	for (size_t i = 0; all_opts[i].name; i++)
		if (applies(t, all_opts[i].name))
			printf("--%s%s\n", all_opts[i].name,
			       all_opts[i].has_arg == required_argument ? "=" : "");
}

/* One common option. Return 0, or -1 when the tool is to exit with
 * t->status (after -h, -V, --schema or a usage error). */
static int
common_opt(struct tool *t, int c, const char *arg)
{
	long long v;

	/* The options a tool has no use for are refused, not ignored. */
	switch (c) {
	case 'I':
	case OPT_REJECTS:
	case OPT_MAX_REJECTS:
	case OPT_MAX_INITIAL_REJECTS:
		if (t->no_rejects)
			return -(tool_usage_msg(t, "%s answers bad input itself: -I, --rejects, --max-rejects "
						"and --max-initial-rejects do not apply", t->name) != 0);
		break;
	case 'O':
	case OPT_KEY:
	case OPT_CODEC:
	case OPT_SUBJECT:
		if (t->writes)
			return -(tool_usage_msg(t, "%s writes %s, not events: -O, --key, --codec and --subject do not apply",
						t->name, t->writes) != 0);
		break;
	case OPT_REGISTRY:
	case OPT_MSG_DELIM:
		if (!applies(t, c == OPT_REGISTRY ? "registry" : "message-delimiter"))
			return -(tool_usage_msg(t, "%s neither reads nor writes events: --registry and --message-delimiter do not apply",
						t->name) != 0);
		break;
	}
	switch (c) {
	case 'h':
		fputs(t->usage, stdout);
		fputs("\nCommon:\n", stdout);
		fputs(help_output, stdout);
		if (!t->writes)
			fputs(help_events_out, stdout);
		if (!t->no_input && !t->no_rejects)
			fputs(help_input, stdout);
		if (!t->writes || (!t->no_input && !t->no_rejects))
			fputs(help_messages, stdout);
		if (!t->no_input && !t->no_rejects)
			fputs(help_rejects, stdout);
		if (!t->no_input)
			fputs(help_max_line, stdout);
		if (!t->no_input && !t->no_events)
			fputs(help_shard, stdout);
		fputs(t->schema_help ? t->schema_help : help_schema, stdout);
		fputs(help_rest, stdout);
		stdout_done(t);
		return -1;
	case 'V':
		printf("%s (reco) %s\n", t->name, RECO_VERSION);
		stdout_done(t);
		return -1;
	case OPT_OPTIONS:
		print_options(t);
		stdout_done(t);
		return -1;
	case 'o':
		t->output = arg;
		break;
	case 'I':
		if ((t->in_fmt = fmt_parse(arg)) < 0)
			return -(tool_usage_msg(t, "-I: unknown format \"%s\" (ndjson, avro, auto, confluent, avro-single)", arg) != 0);
		break;
	case 'O':
		if ((t->out_fmt = fmt_parse(arg)) < 0 || t->out_fmt == FMT_AUTO)
			return -(tool_usage_msg(t, "-O: unknown format \"%s\" (ndjson, avro, confluent, avro-single)", arg) != 0);
		break;
	case OPT_REGISTRY:
		t->registry_url = arg;
		break;
	case OPT_SUBJECT:
		if (!*arg)
			return -(tool_usage_msg(t, "--subject: an empty name") != 0);
		t->subject = arg;
		break;
	case OPT_MSG_DELIM:
		if (strlen(arg) >= sizeof t->delim ||
		    (t->dn = delim_parse(arg, t->delim)) == 0)
			return -(tool_usage_msg(t, "--message-delimiter: expected 1 to %zu bytes in kcat's escapes (\\n, \\t, \\xNN), not \"%s\"",
						sizeof t->delim - 1, arg) != 0);
		break;
	case 'q':
		verbosity = -1;
		break;
	case 'v':
		verbosity++;
		break;
	case OPT_KEY:
		t->key = arg;
		break;
	case OPT_REJECTS:
		t->rejects_path = arg;
		break;
	case OPT_MAX_REJECTS:
		if (num_arg(t, "--max-rejects", arg, 0, &v))
			return -1;
		t->max_rejects = v;
		break;
	case OPT_MAX_INITIAL_REJECTS:
		if (num_arg(t, "--max-initial-rejects", arg, 0, &v))
			return -1;
		t->max_initial_rejects = v;
		break;
	case OPT_STATS:
		t->stats = 1;
		break;
	case OPT_METRICS:
		t->metrics_path = arg;
		break;
	case OPT_PROGRESS:
		t->progress = 1;
		break;
	case OPT_NO_PROGRESS:
		t->progress = 0;
		break;
	case OPT_MAX_LINE:
		if (num_arg(t, "--max-line", arg, 16, &v))
			return -1;
		t->max_line = (size_t)v;
		break;
	case OPT_SCHEMA:
		tool_schema_print(t, arg, (const char *const[]){ "json", "avro" },
				  (const char *const[]){ event_json_schema, event_avsc }, 2);
		return -1;
	case OPT_SHARD:
		if (shard_arg(t, arg))
			return -1;
		break;
	case OPT_SHARD_BY:
		if (t->no_input || t->no_events)
			return tool_usage_msg(t, "--shard-by: %s reads no events to shard", t->name);
		if (strcmp(arg, "hash") == 0)
			t->shard_by = SHARD_BY_HASH;
		else if (strcmp(arg, "murmur2") == 0 || strcmp(arg, "kafka") == 0)
			t->shard_by = SHARD_BY_MURMUR2;
		else if (strcmp(arg, "crc32") == 0)
			t->shard_by = SHARD_BY_CRC32;
		else
			return tool_usage_msg(t, "--shard-by: \"%s\" is none of hash, murmur2 (kafka), crc32",
					      arg);
		break;
	case OPT_CODEC:
		if (strcmp(arg, "null") == 0)
			t->codec = CODEC_NULL;
		else if (strcmp(arg, "deflate") == 0)
			t->codec = CODEC_DEFLATE;
		else
			return -(tool_usage_msg(t, "--codec: unknown codec \"%s\" (null, deflate)", arg) != 0);
		break;
	default:
		tool_usage_msg(t, "unknown option");
		return -1;
	}
	return 0;
}

/*
 * Parse argv: the common options and the tool's own (tool_opts, ended by a
 * zero entry, and tool_short). For each option fn is asked first; it returns
 * 0 if it took the option, 1 to leave it to the common handling. The
 * remaining arguments are the input files. Return 0, or -1 when the tool is
 * to exit now with t->status: 0 after -h, -V or --schema, 2 after a usage
 * error, 3 if standard output failed.
 */
/* The option called name among the tool's, or NULL. */
static const struct option *
find_option(const char *name, size_t n)
{
	for (size_t i = 0; all_opts[i].name; i++)
		if (strlen(all_opts[i].name) == n && memcmp(all_opts[i].name, name, n) == 0)
			return &all_opts[i];
	return NULL;
}

/*
 * The options of the configuration file path, as arguments appended to
 * *args (*nargs of them). A line is an option and its value: "store
 * redis://h/0", "store = redis://h/0" or "--store redis://h/0"; "#"
 * begins a comment line. Lines before any section apply to every tool
 * that has the option (one file serves a pipeline); lines after
 * "[reco-profile]" (or "[profile]") only to that tool, where an option it
 * does not have is an error. Return 0, or -1 after a usage message naming
 * the file and the line.
 */
static int
read_config(struct tool *t, const char *path, char ***args, int *nargs)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int mine = -1; /* -1: no section yet; 0: another tool's; 1: ours */
	int rc = 0;

	if (!f) {
		warn("--config %s: %s", path, strerror(errno));
		t->status = EXIT_IO;
		return -1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *p = line, *e = line + len;
		lineno++;
		while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		if (*p == '[') {
			char *end = strchr(p, ']');
			if (!end || end[1]) {
				rc = tool_usage_msg(t, "%s:%zu: a section is [tool]", path, lineno);
				break;
			}
			*end = '\0';
			mine = strcmp(p + 1, t->name) == 0 || strcmp(p + 1, t->m.tool) == 0;
			continue;
		}
		if (mine == 0)
			continue;
		if (p[0] == '-' && p[1] == '-')
			p += 2;
		size_t n = strcspn(p, " \t=");
		char *v = p + n;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v == '=')
			v++;
		while (*v == ' ' || *v == '\t')
			v++;
		const struct option *o = find_option(p, n);
		if (!o || o->val == OPT_CONFIG || !applies(t, o->name)) {
			if (mine < 0)
				continue; /* another tool's option */
			rc = tool_usage_msg(t, "%s:%zu: %s has no option --%.*s", path, lineno,
					    t->name, (int)n, p);
			break;
		}
		if (o->has_arg == required_argument && !*v) {
			rc = tool_usage_msg(t, "%s:%zu: --%s needs a value", path, lineno, o->name);
			break;
		}
		if (o->has_arg == no_argument && *v) {
			rc = tool_usage_msg(t, "%s:%zu: --%s takes no value", path, lineno, o->name);
			break;
		}
		size_t an = strlen(o->name) + strlen(v) + 4;
		char *a = xmalloc(an);
		snprintf(a, an, "--%s%s%s", o->name, *v ? "=" : "", v);
		*args = xreallocarray(*args, (size_t)*nargs + 1, sizeof **args);
		(*args)[(*nargs)++] = a;
	}
	free(line);
	fclose(f);
	return rc ? -1 : 0;
}

/* The options whose defaults the environment may set, as RECO_ and the
 * name in capitals with "_" for "-": where the data lives and goes. */
static const char *const env_opts[] = { "store", "metrics", "registry", "subject",
					"message-delimiter", "shard-by", NULL };

/* Add --NAME=VALUE to *args for each env_opts variable that is set and
 * names an option the tool has. */
static void
from_env(struct tool *t, char ***args, int *nargs)
{
	for (size_t i = 0; env_opts[i]; i++) {
		char var[64] = "RECO_", *a;
		const char *v;
		size_t k = 5;
		for (const char *p = env_opts[i]; *p && k < sizeof var - 1; p++)
			var[k++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
		var[k] = '\0';
		const struct option *o = find_option(env_opts[i], strlen(env_opts[i]));
		if (!(v = getenv(var)) || !*v || !o || !applies(t, o->name))
			continue;
		a = xmalloc(strlen(o->name) + strlen(v) + 4);
		sprintf(a, "--%s=%s", o->name, v);
		*args = xreallocarray(*args, (size_t)*nargs + 1, sizeof **args);
		(*args)[(*nargs)++] = a;
	}
}

/* argv with the options of --config FILE (or of the file $RECO_CONFIG
 * names), then those of the RECO_* variables, put before the command
 * line's, and --config taken out; NULL after a usage message. The arrays
 * live as long as the process. */
static char **
with_config(struct tool *t, int *argc, char **argv)
{
	const char *path = NULL;
	char **args = NULL;
	/* Static, so that it stays reachable: the options point into it
	 * until exit. */
	static char **out;
	int nargs = 0, n = 0, end = 0;

	for (int i = 1; i < *argc && !end; i++) {
		if (strcmp(argv[i], "--") == 0)
			end = 1;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < *argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
	}
	if (!path && getenv("RECO_CONFIG") && *getenv("RECO_CONFIG"))
		path = getenv("RECO_CONFIG");
	if (path && read_config(t, path, &args, &nargs))
		return NULL;
	from_env(t, &args, &nargs);
	if (!nargs)
		return argv;
	out = xreallocarray(NULL, (size_t)*argc + (size_t)nargs + 1, sizeof *out);
	out[n++] = argv[0];
	for (int i = 0; i < nargs; i++)
		out[n++] = args[i];
	free(args);
	end = 0;
	for (int i = 1; i < *argc; i++) {
		if (!end && strcmp(argv[i], "--") == 0)
			end = 1;
		if (!end && strcmp(argv[i], "--config") == 0 && i + 1 < *argc) {
			i++;
			continue;
		}
		if (!end && strncmp(argv[i], "--config=", 9) == 0)
			continue;
		out[n++] = argv[i];
	}
	out[n] = NULL;
	*argc = n;
	return out;
}

int
tool_parse_args(struct tool *t, int argc, char **argv,
		const struct option *tool_opts, const char *tool_short,
		opt_fn fn)
{
	struct option *all = all_opts; /* static: -h and friends exit */
	size_t ntool = 0;
	char shortopts[128];
	int c;

	while (tool_opts && tool_opts[ntool].name)
		ntool++;
	if (NCOMMON + ntool + 1 > sizeof all_opts / sizeof all_opts[0]) {
		warn("internal error: too many options");
		t->status = EXIT_IO;
		return -1;
	}
	memset(all_opts, 0, sizeof all_opts);
	memcpy(all, common_opts, sizeof common_opts);
	if (ntool)
		memcpy(all + NCOMMON, tool_opts, ntool * sizeof *all);
	snprintf(shortopts, sizeof shortopts, ":hVo:I:O:qv%s",
		 tool_short ? tool_short : "");
	if (!(argv = with_config(t, &argc, argv)))
		return -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, all, NULL)) != -1) {
		if (c == '?') {
			if (optopt && optopt < 256)
				tool_usage_msg(t, "unknown option -%c", optopt);
			else
				tool_usage_msg(t, "unknown option %s", argv[optind - 1]);
			return -1;
		}
		if (c == ':') {
			tool_usage_msg(t, "option %s needs an argument",
				       argv[optind - 1]);
			return -1;
		}
		if (fn && fn(t, c, optarg) == 0)
			continue;
		if (common_opt(t, c, optarg))
			return -1;
	}
	t->files = argv + optind;
	t->nfiles = argc - optind;
	if (t->progress < 0)
		t->progress = verbosity >= 0 && isatty(2);
	if (t->key && t->out_fmt == FMT_AVRO) {
		tool_usage_msg(t, "--key writes keyed NDJSON; it cannot be used with -O avro");
		return -1;
	}
	if (t->key && fmt_avro(t->out_fmt) && !t->dn) {
		tool_usage_msg(t, "--key with -O %s needs --message-delimiter (kcat -P -K '\\t' -D ...)",
			       t->out_fmt == FMT_CONFLUENT ? "confluent" : "avro-single");
		return -1;
	}
	if (t->out_fmt == FMT_CONFLUENT && !t->registry_url) {
		tool_usage_msg(t, "-O confluent needs --registry URL (where the schema is registered)");
		return -1;
	}
	if (t->in_fmt == FMT_CONFLUENT && !t->registry_url) {
		tool_usage_msg(t, "-I confluent needs --registry URL (where the schema ids are looked up)");
		return -1;
	}
	if (t->registry_url) {
		char err[256];
		if (!(t->reg = registry_new(t->registry_url, err, sizeof err))) {
			tool_usage_msg(t, "%s", err);
			return -1;
		}
	}
	return 0;
}

static uint64_t *
core_metric(struct tool *t, const char *what, const char *labels,
	    const char *help)
{
	char name[128];

	snprintf(name, sizeof name, "reco_%s_%s", t->m.tool, what);
	return metric(&t->m, name, labels, help);
}

static void tool_report(struct tool *t);
static void write_metrics(struct tool *t);

/* While the input stays idle: the progress line and the metrics file. */
static void
tool_wait(void *ctx)
{
	tool_report(ctx);
}

/*
 * Record a failure: the first one decides the exit status, and the tool
 * stops reading at the next record (what was applied is still saved by the
 * tool's own exit path).
 */
void
tool_fail(struct tool *t, int status)
{
	if (!t->status || (t->status == EXIT_PIPE && status != EXIT_PIPE))
		t->status = status;
	t->halt = 1;
	if (t->src)
		t->src->stop = 1;
}

/*
 * An output w failed: say so (not for a broken pipe: a reader that went
 * away ends the tool quietly, status 141) and stop. Return -1, for the
 * caller to pass on.
 */
int
tool_output_failed(struct tool *t, struct wout *w)
{
	if (w->reported)
		return -1; /* said once */
	w->reported = 1;
	if (w->err_no == EPIPE) {
		tool_fail(t, EXIT_PIPE);
		return -1;
	}
	warn("%s: write error: %s", w->name, strerror(w->err_no));
	tool_fail(t, EXIT_IO);
	return -1;
}

/*
 * Make everything so far visible: flush the output and the rejects file.
 * Return 0, or -1 after an output failed (reported; the tool stops, and
 * must not commit state that covers what it could not write).
 */
int
tool_flush(struct tool *t)
{
	int rc = 0;

	if (t->avro && avro_out_flush(t->avro))
		rc = tool_output_failed(t, t->out);
	else if (t->out && wout_flush(t->out))
		rc = tool_output_failed(t, t->out);
	if (t->rej && wout_flush(t->rej))
		rc = tool_output_failed(t, t->rej);
	return rc;
}

/* Called when the input would block: make everything so far visible. */
void
tool_idle(void *ctx)
{
	struct tool *t = ctx;

	tool_report(t);
	tool_flush(t);
}

static struct tool *open_tool;
/* Set by the signal handlers, read by every thread: an atomic that needs
 * no lock is both async-signal-safe and free of data races. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "reco_stop needs a lock-free atomic_int");
atomic_int reco_stop;

static void
on_stop(int sig)
{
	reco_stop = sig;
}

/* When cmd/ dies on a fatal error, keep what was already processed: flush
 * the output so that no complete record is lost. */
static void
flush_at_exit(void)
{
	struct tool *t = open_tool;

	if (!t)
		return;
	open_tool = NULL;
	if (t->avro)
		avro_out_flush(t->avro);
	if (t->out)
		wout_flush(t->out);
	if (t->rej)
		wout_flush(t->rej);
}

/*
 * Open the output, the rejects file and the input. Return 0, or -1 with a
 * message and t->status 3 if one cannot be opened (the tool then exits
 * with tool_finish's status).
 */
int
tool_start(struct tool *t)
{
	t->in = core_metric(t, "records_in_total", NULL, "Records read.");
	t->out_n = core_metric(t, "records_out_total", NULL, "Records written.");
	t->dropped_total = core_metric(t, "records_dropped_all_total", NULL,
				       "Records dropped on purpose, all reasons.");
	t->rejected = core_metric(t, "records_rejected_all_total", NULL,
				  "Records rejected as bad input, all reasons.");
	t->metrics_errors = core_metric(t, "metrics_write_errors_total", NULL,
					"--metrics files that could not be written.");
	if (t->shard_n > 1)
		core_metric(t, "records_dropped_total", "reason=\"other_shard\"",
			    "Records dropped on purpose, by reason.");
	t->src = src_new(t->files, t->nfiles, t->max_line);
	t->src->on_idle = tool_idle;
	t->src->on_wait = tool_wait;
	t->src->idle_ctx = t;
	t->t0 = t->last_tick = t->last_metrics = now();
	if (!(t->out = wout_open(t->output))) {
		warn("%s:", t->output);
		tool_fail(t, EXIT_IO);
		return -1;
	}
	t->out->lines = !fmt_avro(t->out_fmt);
	if (t->rejects_path && !(t->rej = wout_open(t->rejects_path))) {
		warn("%s:", t->rejects_path);
		tool_fail(t, EXIT_IO);
		return -1;
	}
	if (t->rej)
		t->rej->lines = 1;
	if (fmt_avro(t->out_fmt) &&
	    !(t->avro = tool_avro_out(t, t->out_fmt, event_avsc)))
		return -1;
	/* No SA_RESTART: a blocked read returns, and the input ends there. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	open_tool = t;
	atexit(flush_at_exit);
	return 0;
}

/*
 * The writer of records of schema (JSON text, outliving the writer) on
 * t's output in Avro format fmt: a container file, or messages. For
 * confluent the schema is registered first (under --subject, by default
 * the record's full name, as the registry's RecordNameStrategy names it).
 * NULL, with a message and t's status 3, if that fails.
 */
struct avro_out *
tool_avro_out(struct tool *t, int fmt, const char *schema)
{
	unsigned char head[10];
	size_t hn;
	char err[512];

	if (fmt == FMT_AVRO)
		return avro_out_new_schema(t->out, t->codec, schema);
	if (fmt == FMT_CONFLUENT) {
		uint32_t id;
		char subject[256];
		json_t *j = json_loads(schema, 0, NULL);
		const char *ns = json_string_value(json_object_get(j, "namespace"));
		const char *name = json_string_value(json_object_get(j, "name"));
		if (t->subject)
			snprintf(subject, sizeof subject, "%s", t->subject);
		else
			snprintf(subject, sizeof subject, "%s%s%s", ns ? ns : "",
				 ns ? "." : "", name ? name : "record");
		json_decref(j);
		if (registry_register(t->reg, subject, schema, &id, err, sizeof err)) {
			warn("%s", err);
			tool_fail(t, EXIT_IO);
			return NULL;
		}
		head[0] = 0;
		head[1] = (unsigned char)(id >> 24);
		head[2] = (unsigned char)(id >> 16);
		head[3] = (unsigned char)(id >> 8);
		head[4] = (unsigned char)id;
		hn = 5;
	} else {
		uint64_t fp;
		if (avro_fingerprint(schema, &fp)) {
			warn("internal error: a schema without a canonical form");
			tool_fail(t, EXIT_IO);
			return NULL;
		}
		head[0] = 0xc3;
		head[1] = 0x01;
		for (int k = 0; k < 8; k++)
			head[2 + k] = (unsigned char)(fp >> (8 * k));
		hn = 10;
	}
	return avro_out_new_msg(t->out, schema, head, hn, t->dn ? t->delim : NULL,
				t->dn);
}

/* kcat -K '\t' splits at the first tab, and lines end at a newline: a key
 * has neither (spaces instead). */
void
tool_key_clean(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\t' || p[i] == '\n')
			p[i] = ' ';
}

/* An Avro message that the delimiter would cut: to the rejects, as JSON. */
static void
reject_unframable(struct tool *t, const struct event *ev)
{
	struct pos at;
	struct buf b = { 0 };

	tool_pos(t, &at);
	event_write_json(&b, ev);
	tool_reject(t, &at, RJ_DELIMITER,
		    "the Avro message holds the --message-delimiter bytes: it cannot be framed (choose a longer delimiter)",
		    b.p, b.n);
	buf_free(&b);
}

/* Write one event in the output format (with its key for --key). After a
 * failed output nothing more is written (the tool is stopping). */
void
tool_emit(struct tool *t, const struct event *ev)
{
	/* A tool that makes its events (reco-ingest from CSV, logs, ...)
	 * shards them here; one that reads events did as it read them. */
	if (t->shard_n > 1 && !t->shard_at_input && !tool_shard_keep(t, ev))
		return;
	t->line.n = 0;
	if (t->key) {
		event_field(ev, t->key, &t->line);
		tool_key_clean(t->line.p, t->line.n);
	}
	if (t->avro) {
		if (t->key)
			avro_out_key(t->avro, t->line.p, t->line.n);
		int r = avro_out_event(t->avro, ev);
		if (r == -2)
			reject_unframable(t, ev);
		else {
			(*t->out_n)++;
			if (r)
				tool_output_failed(t, t->out);
		}
		return;
	}
	(*t->out_n)++;
	/* A line read in the canonical form goes out as it came, straight
	 * into the output buffer when it has room. */
	if (!t->key && ev->canon.p && wout_try_line(t->out, ev->canon.p, ev->canon.n))
		return;
	if (t->key)
		buf_putc(&t->line, '\t');
	event_write_json(&t->line, ev);
	buf_putc(&t->line, '\n');
	if (wout_write(t->out, t->line.p, t->line.n))
		tool_output_failed(t, t->out);
}

/* Write a ready line (with its newline) to the output. */
void
tool_emit_line(struct tool *t, const char *p, size_t n)
{
	(*t->out_n)++;
	if (wout_write(t->out, p, n))
		tool_output_failed(t, t->out);
}

/*
 * Is a record that is not an event yet (rejected or dropped before its
 * user is known) another shard's? Each such record is reported by one
 * shard, shard 0, and counted as other_shard by the others: so across the
 * N shards every record ends in one place, as in one unsharded run.
 */
static int
shard_not_mine(const struct tool *t)
{
	return t->shard_n > 1 && t->shard_i != 0 &&
	       (t->shard_unknown || !t->shard_at_input);
}

/* Count a deliberate drop under reason. */
void
tool_drop(struct tool *t, const char *reason)
{
	char labels[96];

	if (shard_not_mine(t))
		reason = "other_shard";
	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	(*core_metric(t, "records_dropped_total", labels,
		      "Records dropped on purpose, by reason."))++;
	(*t->dropped_total)++;
}

/* Fill at with the current input position. */
void
tool_pos(struct tool *t, struct pos *at)
{
	memset(at, 0, sizeof *at);
	at->file = t->src && t->src->name ? t->src->name : "-";
	at->line = t->src ? t->src->line : 0;
}

static void
format_pos(const struct pos *at, char *out, size_t n)
{
	if (at->message)
		snprintf(out, n, "%s: message %llu", at->file,
			 (unsigned long long)at->message);
	else if (at->block)
		snprintf(out, n, "%s: block %llu record %llu", at->file,
			 (unsigned long long)at->block,
			 (unsigned long long)at->record);
	else if (at->line)
		snprintf(out, n, "%s:%llu", at->file,
			 (unsigned long long)at->line);
	else
		snprintf(out, n, "%s", at->file);
}

/*
 * Reject a record: count it under reason why (an RJ_*), say so on stderr
 * (the first few, all with -v), and write it with its position and raw
 * bytes to --rejects. Past --max-rejects, or when the first
 * --max-initial-rejects records are all rejected, the tool stops reading
 * (t->halt) with status 1; it still saves what it applied.
 */
void
tool_reject(struct tool *t, const struct pos *at, int why,
	    const char *msg, const char *raw, size_t rawn)
{
	char labels[96], where[512];
	const char *reason = why > RJ_NONE && why < RJ_N ? reject_reason_names[why]
						       : reject_reason_names[RJ_INVALID_EVENT];

	if (shard_not_mine(t)) {
		tool_drop(t, "other_shard");
		return;
	}
	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	(*core_metric(t, "records_rejected_total", labels,
		      "Records rejected as bad input, by reason."))++;
	(*t->rejected)++;
	format_pos(at, where, sizeof where);
	if (verbosity >= 0 && (t->nrej_msgs < REJECT_MSGS || verbosity > 0)) {
		warn("%s: %s", where, msg);
		if (++t->nrej_msgs == REJECT_MSGS && verbosity == 0)
			warn("further rejects are not shown (-v shows all)");
	}
	if (t->rej) {
		struct buf *b = &t->line;
		b->n = 0;
		buf_puts(b, "{\"reason\":");
		buf_json_str(b, reason, strlen(reason));
		buf_puts(b, ",\"message\":");
		buf_json_str(b, msg, strlen(msg));
		buf_puts(b, ",\"file\":");
		buf_json_str(b, at->file, strlen(at->file));
		if (at->line) {
			buf_puts(b, ",\"line\":");
			buf_put_u64(b, at->line);
		}
		if (at->message) {
			buf_puts(b, ",\"record\":");
			buf_put_u64(b, at->message);
		}
		if (at->block) {
			buf_puts(b, ",\"block\":");
			buf_put_u64(b, at->block);
			buf_puts(b, ",\"record\":");
			buf_put_u64(b, at->record);
		}
		if (raw) {
			if (utf8_valid(raw, rawn)) {
				buf_puts(b, ",\"raw\":");
				buf_json_str(b, raw, rawn);
			} else {
				/* Bytes that are not UTF-8 survive as base64. */
				static const char b64[] =
					"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
				const unsigned char *r = (const unsigned char *)raw;
				buf_puts(b, ",\"raw_base64\":\"");
				for (size_t i = 0; i < rawn; i += 3) {
					unsigned v = r[i] << 16;
					if (i + 1 < rawn)
						v |= r[i + 1] << 8;
					if (i + 2 < rawn)
						v |= r[i + 2];
					buf_putc(b, b64[v >> 18 & 63]);
					buf_putc(b, b64[v >> 12 & 63]);
					buf_putc(b, i + 1 < rawn ? b64[v >> 6 & 63] : '=');
					buf_putc(b, i + 2 < rawn ? b64[v & 63] : '=');
				}
				buf_putc(b, '"');
			}
		}
		buf_puts(b, "}\n");
		if (wout_write(t->rej, b->p, b->n))
			tool_output_failed(t, t->rej);
	}
	if (t->halt)
		return;
	if (t->max_rejects >= 0 && (long long)*t->rejected > t->max_rejects) {
		warn("more than %lld rejected records: stopping",
		     t->max_rejects);
		tool_fail(t, EXIT_DATA);
	} else if (t->max_initial_rejects > 0 &&
		   *t->rejected == (uint64_t)t->max_initial_rejects &&
		   *t->rejected == *t->in) {
		warn("the first %lld records were all rejected: stopping; is this the right input and format? (--max-initial-rejects 0 reads on)",
		     t->max_initial_rejects);
		tool_fail(t, EXIT_DATA);
	}
}

static void
progress_line(struct tool *t, int final)
{
	double el = now() - t->t0;
	double rate = el > 0 ? (double)*t->in / el : 0;
	char pct[64] = "";

	if (t->src && t->src->total_size) {
		uint64_t done = t->src->done_size + t->src->offset + t->src->start;
		double f = (double)done / (double)t->src->total_size;
		if (f > 1)
			f = 1;
		double left = f > 0 ? el * (1 - f) / f : 0;
		snprintf(pct, sizeof pct, ", %.0f%%, %.0fs left", f * 100, left);
	}
	fprintf(stderr, "\r%s: %llu records, %.0f records/s%s\033[K%s",
		t->name, (unsigned long long)*t->in, rate, pct,
		final ? "\n" : "");
}

/* Called for every record: updates --progress and rewrites --metrics now
 * and then (the wall clock paces reporting only, never data). */
void
tool_tick(struct tool *t)
{
	if ((++t->ticks & 4095) != 0)
		return;
	tool_report(t);
}

/* Progress and metrics, paced by the wall clock (reporting only). */
static void
tool_report(struct tool *t)
{
	double n = now();
	if (n - t->last_tick < 1.0)
		return;
	if (t->progress)
		progress_line(t, 0);
	t->last_tick = n;
	if (t->metrics_path && n - t->last_metrics >= METRICS_EVERY) {
		write_metrics(t);
		t->last_metrics = n;
	}
}

/* Rewrite --metrics. A metrics file that cannot be written does not stop
 * the data: warn once, count it, go on. */
static void
write_metrics(struct tool *t)
{
	if (!metrics_write(&t->m, t->metrics_path))
		return;
	(*t->metrics_errors)++;
	if (!t->metrics_warned)
		warn("%s: cannot write the metrics (going on without them):",
		     t->metrics_path);
	t->metrics_warned = 1;
}

static void
print_stats(struct tool *t)
{
	uint64_t in = *t->in, out = *t->out_n, dr = *t->dropped_total,
		 rj = *t->rejected;
	double el = now() - t->t0;

	fprintf(stderr,
		"%s: records in %llu, out %llu, dropped %llu, rejected %llu (%s)\n",
		t->name, (unsigned long long)in, (unsigned long long)out,
		(unsigned long long)dr, (unsigned long long)rj,
		in == out + dr + rj ? "in = out + dropped + rejected"
				    : "MISMATCH: in != out + dropped + rejected");
	struct buf v = { 0 };
	for (size_t i = 0; i < t->m.n; i++) {
		const struct counter *c = t->m.c[i];
		if (&c->v == t->in || &c->v == t->out_n ||
		    &c->v == t->dropped_total || &c->v == t->rejected)
			continue;
		/* A histogram is no one number: a tool sums it up itself. */
		if ((c->v == 0 && c->type == METRIC_COUNTER) ||
		    c->type == METRIC_HISTOGRAM || c->decl)
			continue;
		const char *short_name = c->name + 6 + strlen(t->m.tool);
		v.n = 0;
		metric_value(&v, c);
		fprintf(stderr, "%s:   %s%s%s%s %.*s\n", t->name, short_name,
			c->labels ? "{" : "", c->labels ? c->labels : "",
			c->labels ? "}" : "", (int)v.n, v.p);
	}
	buf_free(&v);
	fprintf(stderr, "%s: %.3f s, %.0f records/s\n", t->name, el,
		el > 0 ? (double)in / el : 0.0);
}

/* Flush and close an output, reporting a failure once. */
static void
close_out(struct tool *t, struct wout **wp)
{
	struct wout *w = *wp;
	const char *name;

	if (!w)
		return;
	*wp = NULL;
	if (wout_flush(w))
		tool_output_failed(t, w);
	int failed = w->failed;
	name = w->name;
	if (wout_close(w) && !failed) {
		warn("%s: write error:", name);
		tool_fail(t, EXIT_IO);
	}
}

/*
 * Finish: close the output (checking every write), the rejects file, write
 * the metrics and the stats. Return the exit status: the first failure's
 * (3 on an output error, 141 quietly on a broken pipe, 1 after bad input or
 * too many rejects), else 130 or 143 after SIGINT or SIGTERM, else 0.
 */
int
tool_finish(struct tool *t)
{
	int st;

	open_tool = NULL;
	if (t->progress && t->ticks >= 4096)
		progress_line(t, 1);
	if (t->avro && avro_out_close(t->avro))
		tool_output_failed(t, t->out);
	t->avro = NULL;
	registry_free(t->reg);
	t->reg = NULL;
	close_out(t, &t->out);
	close_out(t, &t->rej);
	if (t->metrics_path && t->in)
		write_metrics(t);
	if (t->stats && t->in)
		print_stats(t);
	src_free(t->src);
	t->src = NULL;
	buf_free(&t->line);
	metrics_free(&t->m);
	st = t->status;
	if (reco_stop && (st == EXIT_OK || st == EXIT_PIPE))
		st = 128 + reco_stop;
	return st;
}
