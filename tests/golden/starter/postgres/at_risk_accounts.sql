SELECT
  a.account_id,
  m.mrr
FROM (
  SELECT
    *
  FROM account_history AS a
  WHERE
    (
      valid_from IS NULL OR valid_from < CAST('2026-11-24' AS DATE)
    )
    AND (
      valid_to IS NULL OR valid_to >= CAST('2026-11-24' AS DATE)
    )
) AS a
JOIN (
  SELECT
    *
  FROM mrr_monthly AS m
  WHERE
    month IS NULL OR month < CAST('2026-11-24' AS DATE)
) AS m
  ON m.account_id = a.account_id AND m.month = CAST('2026-11-01' AS DATE)
WHERE
  a.status = 'customer'
  AND m.mrr >= 500
  AND EXISTS(
    SELECT
      1
    FROM (
      SELECT
        *
      FROM events AS before_
      WHERE
        occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
    ) AS before_
    WHERE
      before_.account_id = a.account_id
      AND before_.event_type = 'login'
      AND (
        before_.occurred_at >= CAST('2026-10-12' AS DATE)
        AND before_.occurred_at < CAST('2026-11-09' AS DATE)
      )
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM (
      SELECT
        *
      FROM events AS recent
      WHERE
        occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
    ) AS recent
    WHERE
      recent.account_id = a.account_id
      AND recent.event_type = 'login'
      AND (
        recent.occurred_at >= CAST('2026-11-10' AS DATE)
        AND recent.occurred_at < CAST('2026-11-24' AS DATE)
      )
  )
