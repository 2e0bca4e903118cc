package bot

// The end-to-end tests run the whole app through internal/app, which
// imports bot, so they live in package bot_test; these are the package's
// test helpers they share.
var (
	Unesc       = unesc
	WaitUntil   = waitUntil
	AssertNoRaw = assertNoRaw
)

const Wait = wait
