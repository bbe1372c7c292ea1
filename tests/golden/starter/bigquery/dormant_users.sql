SELECT
  u.user_id,
  u.account_id,
  u.last_seen_at
FROM users AS u
WHERE
  (
    u.last_seen_at >= CAST('2026-08-25' AS DATE)
    AND u.last_seen_at < CAST('2026-10-24' AS DATE)
  )
