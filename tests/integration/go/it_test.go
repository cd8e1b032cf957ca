// franz-go client suite. Run through ../run.sh (needs FJORD_IT_BOOTSTRAP).
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const partitions = 3

var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()},
	{"gzip", kgo.GzipCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
}

type rec struct {
	partition  int32
	key, value []byte // nil = null
	headers    []kgo.RecordHeader
	ts         int64
}

func (r rec) String() string {
	show := func(b []byte) string {
		if b == nil {
			return "null"
		}
		if len(b) > 24 {
			return fmt.Sprintf("%q...(%d bytes)", b[:24], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	var hs []string
	for _, h := range r.headers {
		hs = append(hs, h.Key+"="+show(h.Value))
	}
	return fmt.Sprintf("<p%d key=%s value=%s headers=[%s] ts=%d>", r.partition, show(r.key), show(r.value), strings.Join(hs, " "), r.ts)
}

func field(t *testing.T, tok string) []byte {
	switch tok {
	case "~":
		return nil
	case ".":
		return []byte{}
	}
	h, n, _ := strings.Cut(tok, "*")
	unit, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("records.txt: %v", err)
	}
	count := 1
	if n != "" {
		count, _ = strconv.Atoi(n)
	}
	return bytes.Repeat(unit, count)
}

// loadRecords parses records.txt and gives the records explicit timestamps 1 s apart.
func loadRecords(t *testing.T) []rec {
	f, err := os.Open(filepath.Join("..", "records.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := time.Now().UnixMilli()/1000*1000 - 600_000
	var out []rec
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		p, _ := strconv.Atoi(fs[0])
		r := rec{partition: int32(p), key: field(t, fs[1]), value: field(t, fs[2]), ts: base + 1000*int64(len(out))}
		for _, h := range fs[3:] {
			k, v, _ := strings.Cut(h, "=")
			r.headers = append(r.headers, kgo.RecordHeader{Key: string(field(t, k)), Value: field(t, v)})
		}
		out = append(out, r)
	}
	return out
}

func same(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func assertSame(t *testing.T, what string, got, want []rec) {
	t.Helper()
	for i := 0; i < len(got) && i < len(want); i++ {
		g, w := got[i], want[i]
		ok := same(g.key, w.key) && same(g.value, w.value) && len(g.headers) == len(w.headers) && g.ts == w.ts
		for j := 0; ok && j < len(g.headers); j++ {
			ok = g.headers[j].Key == w.headers[j].Key && same(g.headers[j].Value, w.headers[j].Value)
		}
		if !ok {
			t.Fatalf("%s: record %d differs:\n  got  %v\n  want %v", what, i, g, w)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d records, want %d", what, len(got), len(want))
	}
}

func bootstrap(t *testing.T) string {
	b := os.Getenv("FJORD_IT_BOOTSTRAP")
	if b == "" {
		t.Fatal("FJORD_IT_BOOTSTRAP is not set (run through tests/integration/run.sh)")
	}
	return b
}

func client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// createTopic is the one topic-creation step: kadm CreateTopics, or auto-creation
// through a Metadata request that allows it.
func createTopic(t *testing.T, ctx context.Context, topic string) {
	cl := client(t)
	defer cl.Close()
	if os.Getenv("FJORD_IT_TOPICS") == "admin" {
		resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, nil, topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = true
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) == partitions {
			ready := true
			for _, p := range resp.Topics[0].Partitions {
				ready = ready && p.ErrorCode == 0 && p.Leader >= 0
			}
			if ready {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not ready after 30 s (last error %v)", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func produce(t *testing.T, ctx context.Context, topic string, codec kgo.CompressionCodec, records []rec) {
	cl := client(t, kgo.ProducerBatchCompression(codec), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(50*time.Millisecond))
	defer cl.Close()
	var krs []*kgo.Record
	for _, r := range records {
		krs = append(krs, &kgo.Record{Topic: topic, Partition: r.partition, Key: r.key, Value: r.value,
			Headers: r.headers, Timestamp: time.UnixMilli(r.ts)})
	}
	results := cl.ProduceSync(ctx, krs...)
	next := map[int32]int64{}
	for _, res := range results {
		if res.Err != nil {
			t.Fatalf("produce: %v", res.Err)
		}
		if res.Record.Offset != next[res.Record.Partition] {
			t.Fatalf("p%d: offset %d, want %d", res.Record.Partition, res.Record.Offset, next[res.Record.Partition])
		}
		next[res.Record.Partition]++
	}
}

// read consumes `count` records of one partition from `from` and checks the offsets
// (firstOffset onwards) and that nothing follows before the high watermark.
func read(t *testing.T, ctx context.Context, topic string, p int32, from kgo.Offset, firstOffset int64, count int) []rec {
	cl := client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: from}}), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []rec
	for len(out) < count {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("p%d: %d of %d records after 30 s", p, len(out), count)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Partition != p || r.Offset != firstOffset+int64(len(out)) {
				t.Fatalf("got p%d offset %d, want p%d offset %d", r.Partition, r.Offset, p, firstOffset+int64(len(out)))
			}
			out = append(out, rec{partition: p, key: r.Key, value: r.Value, headers: r.Headers, ts: r.Timestamp.UnixMilli()})
		})
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	runID := strconv.FormatInt(time.Now().UnixMilli(), 16)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			topic := "it.franz-go." + c.name + "." + runID
			records := loadRecords(t)
			createTopic(t, ctx, topic)
			produce(t, ctx, topic, c.codec, records)
			adm := kadm.NewClient(client(t))
			defer adm.Close()
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			for p := int32(0); p < partitions; p++ {
				var want []rec
				for _, r := range records {
					if r.partition == p {
						want = append(want, r)
					}
				}
				if o, _ := ends.Lookup(topic, p); o.Err != nil || o.Offset != int64(len(want)) {
					t.Fatalf("p%d end offset %+v, want %d", p, o, len(want))
				}
				assertSame(t, fmt.Sprintf("p%d from the beginning", p), read(t, ctx, topic, p, kgo.NewOffset().AtStart(), 0, len(want)), want)
				mid := len(want) / 2
				assertSame(t, fmt.Sprintf("p%d from offset %d", p, mid),
					read(t, ctx, topic, p, kgo.NewOffset().At(int64(mid)), int64(mid), len(want)-mid), want[mid:])
				// a timestamp strictly between two records' timestamps
				j := len(want) / 2
				for j < len(want) && want[j].ts <= want[j-1].ts+1 {
					j++
				}
				q := (want[j-1].ts+want[j].ts)/2 + 1
				listed, err := adm.ListOffsetsAfterMilli(ctx, q, topic)
				if err != nil {
					t.Fatal(err)
				}
				if o, _ := listed.Lookup(topic, p); o.Err != nil || o.Offset != int64(j) || o.Timestamp != want[j].ts {
					t.Fatalf("p%d ListOffsets(timestamp %d) = %+v, want offset %d timestamp %d", p, q, o, j, want[j].ts)
				}
				assertSame(t, fmt.Sprintf("p%d from timestamp %d", p, q),
					read(t, ctx, topic, p, kgo.NewOffset().AfterMilli(q), int64(j), len(want)-j), want[j:])
			}
		})
	}
}
