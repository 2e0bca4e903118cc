package bot

// SlashCommands are the slash commands the bot registers; the Slack app
// manifest must declare exactly these.
var SlashCommands = []string{"/isolate", "/unisolate"}

// BotScopes are the minimal bot-token OAuth scopes the bot uses:
// commands (slash commands), chat:write (chat.postMessage, chat.update,
// chat.postEphemeral) and usergroups:read (usergroups.users.list).
// chat.getPermalink needs no scope. Interactivity needs no scope.
var BotScopes = []string{"commands", "chat:write", "usergroups:read"}
