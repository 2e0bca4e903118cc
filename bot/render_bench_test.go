package bot

import (
	"encoding/json"
	"testing"

	"github.com/soc/isolate-bot/store"
)

// BenchmarkRenderCard: rendering and encoding a pending card happens on
// every request and decision, so it is on the path from click to reply.
//
//	go test -run '^$' -bench RenderCard -count 10 ./bot/ | benchstat -
func BenchmarkRenderCard(b *testing.B) {
	card := testCard(store.Pending, func(r *store.Request) {
		r.Comment = "<!channel> beaconing to 203.0.113.9 & lateral movement <@U1> <http://x|y>"
	})
	b.ReportAllocs()
	for b.Loop() {
		blocks, text := Renderer{}.Card(card)
		if _, err := json.Marshal(blocks); err != nil || text == "" {
			b.Fatal(err)
		}
	}
}
