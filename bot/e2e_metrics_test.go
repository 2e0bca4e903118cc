package bot_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ackHistogram is isolatebot_ack_latency_seconds as /metrics shows it.
type ackHistogram struct {
	count   int
	buckets []ackBucket // cumulative, by upper bound
}

type ackBucket struct {
	le    time.Duration
	count int
}

// quantile is the upper bound of the bucket holding quantile q.
func (h ackHistogram) quantile(q float64) time.Duration {
	for _, b := range h.buckets {
		if float64(b.count) >= q*float64(h.count) {
			return b.le
		}
	}
	return -1 // above the last bucket
}

// scrapeAcks reads the ack latency histogram from an instance's /metrics.
func scrapeAcks(t testing.TB, addr string) ackHistogram {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	var h ackHistogram
	for line := range strings.SplitSeq(b.String(), "\n") {
		var le float64
		var n int
		if _, err := fmt.Sscanf(line, `isolatebot_ack_latency_seconds_bucket{le="%g"} %d`, &le, &n); err == nil {
			h.buckets = append(h.buckets, ackBucket{time.Duration(le * float64(time.Second)), n})
		} else if _, err := fmt.Sscanf(line, "isolatebot_ack_latency_seconds_count %d", &n); err == nil {
			h.count = n
		}
	}
	if len(h.buckets) == 0 {
		t.Fatalf("/metrics on %s has no ack latency histogram", addr)
	}
	return h
}
