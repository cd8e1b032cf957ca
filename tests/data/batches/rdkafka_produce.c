/* Produces the record set of a spec file (see batches.py) to partition 0 of a
 * topic with librdkafka, flushing at each FLUSH line.
 *
 *   rdkafka_produce BOOTSTRAP TOPIC CODEC SPECFILE
 */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed = 0;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) {
    fprintf(stderr, "rdkafka_produce: delivery failed: %s\n", rd_kafka_err2str(m->err));
    failed = 1;
  }
}

/* Decodes a hex field in place; returns its length, or -1 for "-" (null). */
static long unhex(char *s) {
  if (strcmp(s, "-") == 0) return -1;
  size_t n = strlen(s) / 2;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(s + 2 * i, "%2x", &v);
    s[i] = (char)v;
  }
  return (long)n;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "rdkafka_produce: %s: %s\n", what, detail);
  exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die(k, err);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: rdkafka_produce BOOTSTRAP TOPIC CODEC SPECFILE\n");
    return 2;
  }
  const char *topic = argv[2];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[512];
  set(conf, "bootstrap.servers", argv[1]);
  set(conf, "compression.codec", argv[3]);
  set(conf, "linger.ms", "100");
  set(conf, "acks", "all");
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) die("rd_kafka_new", err);

  FILE *f = fopen(argv[4], "r");
  if (!f) die("open", argv[4]);
  static char line[1 << 16];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (strcmp(line, "FLUSH") == 0) {
      if (rd_kafka_flush(rk, 30000)) die("flush", "timeout");
      continue;
    }
    char *key = line;
    char *val = strchr(key, '\t');
    if (!val) die("bad spec line", line);
    *val++ = 0;
    char *hdrs = strchr(val, '\t');
    if (!hdrs) die("bad spec line", line);
    *hdrs++ = 0;
    long klen = unhex(key), vlen = unhex(val);

    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    char *save = NULL;
    for (char *kv = strtok_r(hdrs, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
      char *hv = strchr(kv, ':');
      if (!hv) die("bad header", kv);
      *hv++ = 0;
      long hklen = unhex(kv), hvlen = unhex(hv);
      const void *hvptr = hvlen < 0 ? NULL : hv;
      ssize_t hvsize = hvlen < 0 ? 0 : hvlen;
      rd_kafka_header_add(h, kv, hklen, hvptr, hvsize);
    }
    /* librdkafka's RD_KAFKA_V_* macros do not parenthesize their arguments */
    const void *kptr = klen < 0 ? NULL : key;
    void *vptr = vlen < 0 ? NULL : val;
    size_t ksize = klen < 0 ? 0 : (size_t)klen, vsize = vlen < 0 ? 0 : (size_t)vlen;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(kptr, ksize), RD_KAFKA_V_VALUE(vptr, vsize),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e) die("produce", rd_kafka_err2str(e));
  }
  fclose(f);
  if (rd_kafka_flush(rk, 30000)) die("flush", "timeout");
  rd_kafka_destroy(rk);
  if (failed) return 1;
  printf("%s\n", rd_kafka_version_str());
  return 0;
}
