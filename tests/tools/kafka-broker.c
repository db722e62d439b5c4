/* kafka-broker: a loopback Kafka cluster for the tests, from librdkafka's mock cluster API. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 64

struct topic {
	char *name;
	int partitions;
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: kafka-broker [-h] [-b brokers] [-t topic:partitions ...]\n");
}

/* Parse a positive int of at most max; return -1 if s is not one. */
static int
parse_count(const char *s, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
		return -1;
	return (int)v;
}

int
main(int argc, char **argv)
{
	struct topic topics[MAX_TOPICS];
	struct sigaction sa;
	rd_kafka_conf_t *conf;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *rk;
	rd_kafka_resp_err_t err;
	sigset_t set, old;
	char errstr[512], *colon;
	int ntopics = 0, nbrokers = 1, c, i;

	while ((c = getopt(argc, argv, "b:ht:")) != -1) {
		switch (c) {
		case 'b':
			if ((nbrokers = parse_count(optarg, 64)) < 0) {
				fprintf(stderr, "kafka-broker: bad broker count \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (ntopics == MAX_TOPICS) {
				fprintf(stderr, "kafka-broker: more than %d topics\n", MAX_TOPICS);
				return 2;
			}
			colon = strrchr(optarg, ':');
			if (colon == NULL || colon == optarg ||
			    (topics[ntopics].partitions = parse_count(colon + 1, 10000)) < 0) {
				fprintf(stderr, "kafka-broker: bad topic \"%s\", want NAME:PARTITIONS\n",
				    optarg);
				return 2;
			}
			*colon = '\0';
			topics[ntopics++].name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	/* Block the stop signals until the cluster's threads exist, so that
	 * they inherit the mask and only this thread takes them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka-broker: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 3;
	}
	/* The handle only carries the cluster; it connects to nothing. */
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) == NULL) {
		fprintf(stderr, "kafka-broker: %s\n", errstr);
		return 3;
	}
	if ((mc = rd_kafka_mock_cluster_new(rk, nbrokers)) == NULL) {
		fprintf(stderr, "kafka-broker: cannot start the mock cluster\n");
		rd_kafka_destroy(rk);
		return 3;
	}
	for (i = 0; i < ntopics; i++) {
		err = rd_kafka_mock_topic_create(mc, topics[i].name, topics[i].partitions,
		    nbrokers < 3 ? nbrokers : 3);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "kafka-broker: topic %s: %s\n", topics[i].name,
			    rd_kafka_err2str(err));
			rd_kafka_mock_cluster_destroy(mc);
			rd_kafka_destroy(rk);
			return 3;
		}
	}
	if (printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc)) < 0 || fflush(stdout) == EOF) {
		fprintf(stderr, "kafka-broker: standard output: %s\n", strerror(errno));
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(rk);
		return 3;
	}

	/* Wait for a stop signal: sigsuspend unblocks them atomically. */
	sigdelset(&old, SIGTERM);
	sigdelset(&old, SIGINT);
	while (!stop)
		sigsuspend(&old);

	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
