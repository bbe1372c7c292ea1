WITH last_seen AS (
  SELECT
    e.user_id,
    MAX(e.occurred_at) AS last_seen_at
  FROM (
    SELECT
      *
    FROM events AS e
    WHERE
      occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
  ) AS e
  GROUP BY
    e.user_id
)
SELECT
  u.user_id,
  u.account_id,
  s.last_seen_at
FROM (
  SELECT
    *
  FROM users AS u
  WHERE
    signup_date IS NULL OR signup_date < CAST('2026-11-24' AS DATE)
) AS u
JOIN last_seen AS s
  ON s.user_id = u.user_id
WHERE
  (
    s.last_seen_at >= CAST('2026-08-25' AS DATE)
    AND s.last_seen_at < CAST('2026-10-24' AS DATE)
  )
