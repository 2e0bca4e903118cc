package commands

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/soc/isolate-bot/defender"
)

const hexID = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378"

// parseCase is one Parse input and what it must give.
type parseCase struct {
	name, cmd, text string
	want            Parsed
	errHas          string // non-empty: a *UsageError containing this
}

var longComment = strings.Repeat("é", MaxCommentRunes)

func TestParse(t *testing.T) {
	long := longComment
	runParse(t, []parseCase{
		{"empty is help", "/isolate", "", Parsed{Op: OpHelp}, ""},
		{"help", "/isolate", "  HELP ", Parsed{Op: OpHelp}, ""},
		{"unisolate help", "/unisolate", "help", Parsed{Op: OpHelp}, ""},
		{"full by host", "/isolate", "web-01.contoso.local full beaconing to 1.2.3.4",
			Parsed{Op: OpIsolate, Machine: "web-01.contoso.local", Type: defender.Full, Comment: "beaconing to 1.2.3.4"}, ""},
		{"type any case, id upper case", "/isolate", strings.ToUpper(hexID) + " SeLeCtIvE why",
			Parsed{Op: OpIsolate, Machine: hexID, MachineIsID: true, Type: defender.Selective, Comment: "why"}, ""},
		{"unmanaged", "/isolate", "printer-3f unmanaged contain it",
			Parsed{Op: OpIsolate, Machine: "printer-3f", Type: defender.UnManagedDevice, Comment: "contain it"}, ""},
		{"comment kept raw", "/isolate", "web-01 full  <b>&  two  spaces</b> \n",
			Parsed{Op: OpIsolate, Machine: "web-01", Type: defender.Full, Comment: "<b>&  two  spaces</b>"}, ""},
		{"slack link with label", "/isolate", "<http://web-01.contoso.local|web-01.contoso.local> full x",
			Parsed{Op: OpIsolate, Machine: "web-01.contoso.local", Type: defender.Full, Comment: "x"}, ""},
		{"slack link without label", "/isolate", "<http://Web-01.Contoso.Local> full x",
			Parsed{Op: OpIsolate, Machine: "web-01.contoso.local", Type: defender.Full, Comment: "x"}, ""},
		{"underscore tolerated, trailing dot", "/isolate", "LAB_PC-7.corp. full x",
			Parsed{Op: OpIsolate, Machine: "lab_pc-7.corp", Type: defender.Full, Comment: "x"}, ""},
		{"comment at limit", "/isolate", "web-01 full " + long,
			Parsed{Op: OpIsolate, Machine: "web-01", Type: defender.Full, Comment: long}, ""},
		{"unisolate", "/unisolate", hexID + " all clear",
			Parsed{Op: OpUnisolate, Machine: hexID, MachineIsID: true, Comment: "all clear"}, ""},
		{"status host", "/isolate", "status web-01", Parsed{Op: OpStatus, Machine: "web-01"}, ""},
		{"status request", "/isolate", "Status R-7", Parsed{Op: OpStatus, RequestID: "r-7"}, ""},
		{"cancel", "/isolate", "cancel r-70", Parsed{Op: OpCancel, RequestID: "r-70"}, ""},
	})
}

func TestParseRejects(t *testing.T) {
	long := longComment
	runParse(t, []parseCase{
		{"mailto rejected", "/isolate", "<mailto:a@b.c|a@b.c> full x", Parsed{}, "not a machine"},
		{"user mention rejected", "/isolate", "<@U123> full x", Parsed{}, "not a machine"},
		{"bad host", "/isolate", "web/01 full x", Parsed{}, "not a machine"},
		{"label too long", "/isolate", strings.Repeat("a", 64) + " full x", Parsed{}, "not a machine"},
		{"host too long", "/isolate", strings.Repeat("abcdefg.", 32) + "ab full x", Parsed{}, "not a machine"},
		{"leading hyphen", "/isolate", "-web full x", Parsed{}, "not a machine"},
		{"link with path", "/isolate", "<http://web-01/x|web-01/x> full x", Parsed{}, "not a machine"},
		{"missing type", "/isolate", "web-01", Parsed{}, "Missing the isolation type"},
		{"bad type", "/isolate", "web-01 partial x", Parsed{}, `Unknown isolation type "partial"`},
		{"missing comment", "/isolate", "web-01 full   ", Parsed{}, "comment is required"},
		{"unisolate missing comment", "/unisolate", "web-01", Parsed{}, "comment is required"},
		{"comment too long", "/isolate", "web-01 full " + long + "x", Parsed{}, "1001 characters"},
		{"status without arg", "/isolate", "status", Parsed{}, "Missing the machine"},
		{"status extra", "/isolate", "status a b", Parsed{}, "one argument"},
		{"cancel not an id", "/isolate", "cancel web-01", Parsed{}, "not a request id"},
		{"cancel r-0", "/isolate", "cancel r-0", Parsed{}, "not a request id"},
		{"unknown command", "/contain", "x", Parsed{}, "Unknown command"},
	})
}

func runParse(t *testing.T, tests []parseCase) { t.Helper(); runParser(t, Parser{}, tests) }

func runParser(t *testing.T, ps Parser, tests []parseCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ps.Parse(tt.cmd, tt.text)
			if tt.errHas != "" {
				var ue *UsageError
				if !errors.As(err, &ue) {
					t.Fatalf("Parse(%q) = %+v, %v; want a *UsageError", tt.text, got, err)
				}
				if !strings.Contains(ue.Problem, tt.errHas) || ue.Usage == "" {
					t.Fatalf("problem %q (usage %q); want it to contain %q", ue.Problem, ue.Usage, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.text, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) =\n %+v\nwant\n %+v", tt.text, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "help", "web-01.contoso.local full beaconing", hexID + " selective x",
		"<http://web-01.contoso.local|web-01.contoso.local> unmanaged y", "<mailto:a@b|a@b> full z",
		"status r-7", "cancel r-70", "status <http://x>", "a_b. FULL \u00a0é\t", "<|> full x", "<http://|> full x",
		"web-01, web-02,db-01 full x", "a ,b , A. y", "a,,b full x", "<http://a|a>,<http://b> full x", "<http://a.b,c.d|a.b,c.d> full x", "a,<@U1>,<http://x", "a,b,",
		"tag:Tier0 full x", `TAG:"Tier 0" y`, "tag:“a, b” full z", "tag:R&amp;D x", "tag:x,a full y", `tag:"" x`, "tag: x",
		machineList(12) + " full x",
	} {
		f.Add("/isolate", s)
		f.Add("/unisolate", s)
	}
	f.Fuzz(func(t *testing.T, cmd, text string) {
		p, err := Parse(cmd, text)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Problem == "" || ue.Usage == "" {
				t.Fatalf("error %v is not a complete *UsageError", err)
			}
			return
		}
		switch p.Op {
		case OpHelp:
			return
		case OpCancel:
			if _, ok := parseRequestID(p.RequestID); !ok {
				t.Fatalf("cancel with bad request id %q", p.RequestID)
			}
			return
		case OpStatus:
			if p.RequestID != "" {
				return
			}
		case OpIsolate, OpUnisolate:
			if n := utf8.RuneCountInString(p.Comment); n < 1 || n > MaxCommentRunes || !utf8.ValidString(p.Comment) {
				t.Fatalf("comment of %d runes: %q", n, p.Comment)
			}
			if strings.TrimSpace(p.Comment) != p.Comment {
				t.Fatalf("comment not trimmed: %q", p.Comment)
			}
		default:
			t.Fatalf("unknown op %d", p.Op)
		}
		if p.Op == OpIsolate && p.Type != defender.Full && p.Type != defender.Selective && p.Type != defender.UnManagedDevice {
			t.Fatalf("isolation type %q", p.Type)
		}
		if p.Op == OpUnisolate && p.Type != "" {
			t.Fatalf("unisolate with type %q", p.Type)
		}
		checkMachines(t, p)
	})
}

// checkMachines: a request names exactly one of a machine, a list of
// distinct machines within the maximum, or a plain-text tag.
func checkMachines(t *testing.T, p Parsed) {
	t.Helper()
	if p.Duplicates < 0 || p.Op == OpStatus && (p.Bulk() || p.Duplicates != 0) {
		t.Fatalf("%+v", p)
	}
	switch {
	case p.Tag != "":
		n := utf8.RuneCountInString(p.Tag)
		if p.Machine != "" || len(p.Machines) > 0 || n > MaxTagRunes || !utf8.ValidString(p.Tag) ||
			strings.TrimSpace(p.Tag) != p.Tag || strings.ContainsFunc(p.Tag, unicode.IsControl) {
			t.Fatalf("bad tag form %+v", p)
		}
	case len(p.Machines) > 0:
		if p.Machine != "" || len(p.Machines) < 2 {
			t.Fatalf("bad list form: %d machines, Machine %q", len(p.Machines), p.Machine)
		}
		seen := make(map[string]bool)
		for _, m := range p.Machines {
			checkMachine(t, m.Machine, m.IsID)
			if seen[m.Machine] {
				t.Fatalf("%q twice in the list", m.Machine)
			}
			seen[m.Machine] = true
		}
	default:
		checkMachine(t, p.Machine, p.MachineIsID)
	}
}

func checkMachine(t *testing.T, m string, isID bool) {
	t.Helper()
	if isID {
		if !isMachineID(m) || strings.ToLower(m) != m {
			t.Fatalf("bad machine id %q", m)
		}
	} else if !isHostName(m) || len(m) > 253 || strings.ToLower(m) != m || strings.ContainsAny(m, "<>|/ ,") {
		t.Fatalf("bad host name %q", m)
	}
}
