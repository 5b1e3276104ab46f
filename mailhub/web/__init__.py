"""The web console served by ``mailhub serve`` next to the JSON API (issue 7)."""
