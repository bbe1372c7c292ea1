SELECT
  a.account_id
FROM accounts AS a
WHERE
  a.arr > 10000
