package commands

import (
	"reflect"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{CallTimeout: 7 * time.Second, PollFor: -time.Second}.withDefaults()
	want := Config{ApprovalTTL: time.Hour, QueueMaxWait: 2 * time.Hour, CommandTimeout: 20 * time.Second,
		CallTimeout: 7 * time.Second, PollInterval: 30 * time.Second, PollFor: 30 * time.Minute,
		GroupCacheTTL: 5 * time.Minute, SchedulerEvery: 5 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("withDefaults = %+v\nwant %+v", got, want)
	}
}
