package commands

import (
	"strings"
	"testing"
)

// BenchmarkParse: every slash command is parsed before anything else.
//
//	go test -run '^$' -bench Parse -count 10 ./commands/ | benchstat -
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, command, text string }{
		{"host", "/isolate", "web-01.contoso.local full beaconing to 203.0.113.9 from several hosts"},
		{"wrapped", "/isolate", "<http://web-01.contoso.local|web-01.contoso.local> selective suspected ransomware"},
		{"id", "/unisolate", "7B1F4967D9728E5AA3C06A9E617A22A4A5A17378 false positive, confirmed with the owner"},
		{"tag", "/isolate", `tag:"Tier 0" full suspected ransomware on the domain controllers`},
		{"list12", "/isolate", strings.ReplaceAll(machineList(12), ",", ", ") + " full outbreak"},
		{"list500", "/isolate", machineList(500) + " full outbreak: every web server"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.command, bc.text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
