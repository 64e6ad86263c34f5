DROP INDEX servers_icon_url_idx;
DROP INDEX events_reply_to_idx;
