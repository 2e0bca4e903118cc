package defender

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestChunkOr: every term lands in exactly one chunk, in order; each URL
// is within MaxLookupURLBytes and decodes to exactly head + the terms
// joined by " or " + tail; maxTerms caps a chunk; a term that cannot fit
// alone is refused.
func TestChunkOr(t *testing.T) {
	var terms []string
	for i := range 300 {
		name := fmt.Sprintf("host-%d é&+#%%'", i)
		terms = append(terms, nameTerm(name))
	}
	const base = 40
	for _, tt := range []struct {
		name       string
		head, tail string
		maxTerms   int
		reserve    int
	}{
		{"plain", "", "", 0, 0},
		{"wrapped", "(", ")" + isolationTypes, 0, 11},
		{"capped", "", "", 7, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			chunks, err := chunkOr("op", base, tt.head, tt.tail, terms, tt.maxTerms, tt.reserve)
			if err != nil {
				t.Fatal(err)
			}
			next := 0
			for _, ch := range chunks {
				if ch.first != next || ch.end <= ch.first || tt.maxTerms > 0 && ch.end-ch.first > tt.maxTerms {
					t.Fatalf("chunk [%d,%d) after %d", ch.first, ch.end, next)
				}
				next = ch.end
				if n := base + 1 + len(ch.query) + tt.reserve; n > MaxLookupURLBytes {
					t.Errorf("URL of %d bytes", n)
				}
				q, err := url.ParseQuery(ch.query)
				want := tt.head + strings.Join(terms[ch.first:ch.end], orSep) + tt.tail
				if err != nil || len(q) != 1 || q.Get("$filter") != want {
					t.Fatalf("query %q decodes to %v, %v", ch.query, q, err)
				}
			}
			if next != len(terms) {
				t.Fatalf("chunks cover %d of %d terms", next, len(terms))
			}
			if tt.maxTerms == 0 && len(chunks) > 1 && base+1+len(chunks[0].query)+tt.reserve+queryEscapedLen(orSep+terms[chunks[0].end]) <= MaxLookupURLBytes {
				t.Errorf("the first chunk had room for one more term")
			}
		})
	}
	_, err := chunkOr("op", base, "", "", []string{strings.Repeat("é", MaxLookupURLBytes/3)}, 0, 0)
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("oversized term: %v", err)
	}
	if chunks, err := chunkOr("op", base, "", "", nil, 0, 0); err != nil || len(chunks) != 0 {
		t.Fatalf("no terms: %v, %v", chunks, err)
	}
}

// refs500 is a mixed outbreak list: ids, FQDNs and bare names.
func refs500() []string {
	refs := make([]string, 500)
	for i := range refs {
		switch i % 3 {
		case 0:
			refs[i] = fmt.Sprintf("%040x", i)
		case 1:
			refs[i] = fmt.Sprintf("host-%03d.corp.contoso.com", i)
		default:
			refs[i] = fmt.Sprintf("host-%03d", i)
		}
	}
	return refs
}

// BenchmarkResolveChunks: planning the look-ups of 500 mixed references
// (terms and URL-bounded chunks), per 500 refs.
func BenchmarkResolveChunks(b *testing.B) {
	refs := refs500()
	base := len("https://api.security.microsoft.com/api/machines")
	b.ReportAllocs()
	var n int
	for b.Loop() {
		p := planResolve(refs)
		chunks, err := p.chunks("op", base)
		if err != nil {
			b.Fatal(err)
		}
		n = len(chunks)
	}
	b.ReportMetric(float64(n), "calls")
}

// BenchmarkActionChunks: the pre-check's look-ups of 500 machines.
func BenchmarkActionChunks(b *testing.B) {
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040x", i)
	}
	base := len("https://api.security.microsoft.com/api/machineactions")
	b.ReportAllocs()
	var n int
	for b.Loop() {
		p, err := planActions("op", base, ids, 5)
		if err != nil {
			b.Fatal(err)
		}
		n = len(p.chunks)
	}
	b.ReportMetric(float64(n), "calls")
}
