package commands

import (
	"fmt"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/defender"
)

func refs(names ...string) []MachineRef {
	out := make([]MachineRef, len(names))
	for i, n := range names {
		out[i] = MachineRef{Machine: n, IsID: isMachineID(n)}
	}
	return out
}

// machineList is "web-000,web-001,…" with n names.
func machineList(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("web-%03d", i)
	}
	return strings.Join(names, ",")
}

func TestParseList(t *testing.T) {
	runParse(t, []parseCase{
		{"list with and without spaces", "/isolate", "web-01, web-02,db-01 full outbreak",
			Parsed{Op: OpIsolate, Machines: refs("web-01", "web-02", "db-01"), Type: defender.Full, Comment: "outbreak"}, ""},
		{"spaces before commas too", "/isolate", "web-01 ,web-02 ,  web-03 selective x",
			Parsed{Op: OpIsolate, Machines: refs("web-01", "web-02", "web-03"), Type: defender.Selective, Comment: "x"}, ""},
		{"ids lower-cased, mixed with names", "/isolate", strings.ToUpper(hexID) + ",Web-01 unmanaged x",
			Parsed{Op: OpIsolate, Machines: refs(hexID, "web-01"), Type: defender.UnManagedDevice, Comment: "x"}, ""},
		{"duplicates dropped and counted", "/isolate", "web-01,WEB-01,web-02,web-01. full x",
			Parsed{Op: OpIsolate, Machines: refs("web-01", "web-02"), Duplicates: 2, Type: defender.Full, Comment: "x"}, ""},
		{"a list naming one machine is the single form", "/isolate", "web-01, WEB-01 full x",
			Parsed{Op: OpIsolate, Machine: "web-01", Duplicates: 1, Type: defender.Full, Comment: "x"}, ""},
		{"slack links unwrapped per entry", "/isolate", "<http://web-01.contoso.local|web-01.contoso.local>, <http://Web-02.contoso.local> full x",
			Parsed{Op: OpIsolate, Machines: refs("web-01.contoso.local", "web-02.contoso.local"), Type: defender.Full, Comment: "x"}, ""},
		{"one link holding the whole list", "/isolate", "<http://web-01.contoso.com,web-02.contoso.com|web-01.contoso.com,web-02.contoso.com> full x",
			Parsed{Op: OpIsolate, Machines: refs("web-01.contoso.com", "web-02.contoso.com"), Type: defender.Full, Comment: "x"}, ""},
		{"unisolate list", "/unisolate", "a, b all clear",
			Parsed{Op: OpUnisolate, Machines: refs("a", "b"), Comment: "all clear"}, ""},
		{"tag", "/isolate", "tag:Tier0 full ransomware",
			Parsed{Op: OpIsolate, Tag: "Tier0", Type: defender.Full, Comment: "ransomware"}, ""},
		{"tag keyword any case", "/isolate", "TAG:Finance selective x",
			Parsed{Op: OpIsolate, Tag: "Finance", Type: defender.Selective, Comment: "x"}, ""},
		{"quoted tag with a space", "/isolate", `tag:"Tier 0" full x`,
			Parsed{Op: OpIsolate, Tag: "Tier 0", Type: defender.Full, Comment: "x"}, ""},
		{"curly quotes", "/isolate", "tag:“Tier 0, EMEA” full x",
			Parsed{Op: OpIsolate, Tag: "Tier 0, EMEA", Type: defender.Full, Comment: "x"}, ""},
		{"slack entities decoded", "/isolate", "tag:R&amp;D full x",
			Parsed{Op: OpIsolate, Tag: "R&D", Type: defender.Full, Comment: "x"}, ""},
		{"unisolate tag", "/unisolate", `tag:"Tier 0"   all clear`,
			Parsed{Op: OpUnisolate, Tag: "Tier 0", Comment: "all clear"}, ""},
		{"keywords still win", "/isolate", "status r-7", Parsed{Op: OpStatus, RequestID: "r-7"}, ""},
		{"500 machines by default", "/isolate", machineList(500) + " full x",
			Parsed{Op: OpIsolate, Machines: refs(strings.Split(machineList(500), ",")...), Type: defender.Full, Comment: "x"}, ""},
	})
}

func TestParseListRejects(t *testing.T) {
	runParse(t, []parseCase{
		{"empty entry", "/isolate", "a,,b full x", Parsed{}, "Entry 2 of the machine list is empty"},
		{"blank entry", "/isolate", "a, ,b full x", Parsed{}, "Entry 2 of the machine list is empty"},
		{"trailing comma", "/unisolate", "a,b,", Parsed{}, "Entry 3 of the machine list is empty"},
		{"bad entry named", "/isolate", "web-01,web/02 full x", Parsed{}, `"web/02" is not a machine`},
		{"mention in a list", "/isolate", "web-01,<@U123> full x", Parsed{}, `"<@U123>" is not a machine`},
		{"link with a path in a list", "/isolate", "a,<http://web-01/x|web-01/x> full x", Parsed{}, `"web-01/x" is not a machine`},
		{"unclosed link in a list", "/isolate", "a,<http://b full x", Parsed{}, `"<http://b" is not a machine`},
		{"list without type", "/isolate", "a, b", Parsed{}, "Missing the isolation type"},
		{"list without comment", "/unisolate", "a, b", Parsed{}, "comment is required"},
		{"tag inside a list", "/isolate", "web-01,tag:x full x", Parsed{}, "cannot be mixed"},
		{"list after a tag", "/isolate", "tag:x,web-01 full x", Parsed{}, "one tag or a list"},
		{"list after a tag, spaced", "/isolate", "tag:x , web-01 full x", Parsed{}, "one tag or a list"},
		{"list after a quoted tag", "/isolate", `tag:"a b",c full x`, Parsed{}, "one tag or a list"},
		{"text after closing quote", "/isolate", `tag:"a b"c full x`, Parsed{}, "one tag or a list"},
		{"space after tag:", "/isolate", "tag: Tier0 full x", Parsed{}, "tag is missing"},
		{"tag: alone", "/unisolate", "tag:", Parsed{}, "tag is missing"},
		{"empty quoted tag", "/isolate", `tag:"" full x`, Parsed{}, "tag is empty"},
		{"unclosed quote", "/isolate", `tag:"Tier 0 full x`, Parsed{}, "closing quote"},
		{"control in tag", "/isolate", "tag:\"a\x01b\" full x", Parsed{}, "not plain text"},
		{"tag too long", "/isolate", "tag:" + strings.Repeat("t", MaxTagRunes+1) + " full x", Parsed{}, "longer than 200"},
		{"tag without type", "/isolate", "tag:x", Parsed{}, "Missing the isolation type"},
		{"status takes one machine", "/isolate", "status a,b", Parsed{}, "not a machine"},
	})
}

func TestParserBulkMax(t *testing.T) {
	runParser(t, Parser{BulkMax: 3}, []parseCase{
		{"at the maximum", "/isolate", "a,b,c full x",
			Parsed{Op: OpIsolate, Machines: refs("a", "b", "c"), Type: defender.Full, Comment: "x"}, ""},
		{"duplicates do not count", "/unisolate", "a,b,c,A,b y",
			Parsed{Op: OpUnisolate, Machines: refs("a", "b", "c"), Duplicates: 2, Comment: "y"}, ""},
		{"over the maximum", "/isolate", "a,b,c,d full x", Parsed{}, "4 machines given; at most 3 at once"},
		{"a tag is counted after its look-up", "/isolate", "tag:x full x",
			Parsed{Op: OpIsolate, Tag: "x", Type: defender.Full, Comment: "x"}, ""},
	})
}

func TestParsedBulk(t *testing.T) {
	for _, tt := range []struct {
		text string
		bulk bool
	}{
		{"web-01 full x", false}, {"web-01,web-01 full x", false}, {"a,b full x", true}, {"tag:x full x", true},
	} {
		p, err := Parse("/isolate", tt.text)
		if err != nil || p.Bulk() != tt.bulk {
			t.Errorf("Parse(%q) = %+v, %v; want Bulk %v", tt.text, p, err, tt.bulk)
		}
	}
}

func TestSplitList(t *testing.T) {
	for _, tt := range []struct{ in, list, rest string }{
		{"", "", ""},
		{"a", "a", ""},
		{"  a b", "a", " b"},
		{"a, b c", "a, b", " c"},
		{"a ,b c", "a ,b", " c"},
		{"a,\tb ,  c\nd", "a,\tb ,  c", "\nd"},
		{"a, ", "a,", " "},
		{"a b,c", "a", " b,c"},
	} {
		if list, rest := splitList(tt.in); list != tt.list || rest != tt.rest {
			t.Errorf("splitList(%q) = %q, %q; want %q, %q", tt.in, list, rest, tt.list, tt.rest)
		}
	}
}

func TestUnwrapLinks(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"a,b", "a,b"},
		{"<http://a.com|a.com>,<https://B.com>", "a.com,B.com"},
		{"<http://a.com,b.com|a.com,b.com>", "a.com,b.com"},
		{"<http://a.com|>,x", "a.com,x"},
		{"<@U1>,<mailto:a@b|a@b>,c", "<@U1>,<mailto:a@b|a@b>,c"},
		{"a,<http://b", "a,<http://b"},
		{"<>,<http://c>", "<>,c"},
	} {
		if got := unwrapLinks(tt.in); got != tt.want {
			t.Errorf("unwrapLinks(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
