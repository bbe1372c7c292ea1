SELECT
  a.account_id,
  CAST('2026-11-23' AS DATE) AS evaluated_on
FROM accounts AS a
WHERE
  a.region IN ('DACH')
  AND a.name <> 'it''s; DROP TABLE accounts; --'
  AND a.arr >= 1000.5
  AND TRUE
  AND a.signup_date >= CAST('2024-01-01' AS DATE)
