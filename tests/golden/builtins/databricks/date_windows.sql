SELECT
  u.user_id
FROM users AS u
WHERE
  (
    u.last_seen_at >= CAST('2026-11-17' AS DATE)
    AND u.last_seen_at < CAST('2026-11-24' AS DATE)
  )
  OR (
    u.last_seen_at >= CAST('2026-09-24' AS DATE)
    AND u.last_seen_at < CAST('2026-10-25' AS DATE)
  )
  OR u.last_seen_at < CAST('2025-11-23' AS DATE)
  OR u.last_seen_at >= CAST('2026-10-23' AS DATE)
  OR u.last_seen_at >= CAST('2026-09-01' AS DATE)
