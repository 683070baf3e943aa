-- Device UUIDs are compared case-insensitively: the service keeps them in lower case. A
-- subscription stored in another case by an older version is lowered; when both cases of a UUID
-- subscribed to one service, the lower-case one (else the first made) is kept.
DELETE FROM pushjet_subscriptions AS s
USING pushjet_subscriptions AS t
WHERE s.public = t.public
  AND lower(s.device) = lower(t.device)
  AND s.device <> lower(s.device)
  AND s.device <> t.device
  AND (t.device = lower(t.device) OR t.ord < s.ord);

UPDATE pushjet_subscriptions SET device = lower(device) WHERE device <> lower(device);

UPDATE pushjet_demo SET device = lower(device) WHERE device <> lower(device);
