SELECT
  a.account_id,
  a.name,
  a.industry,
  a.employees
FROM accounts AS a
WHERE
  a.status = 'customer' AND a.employees < 200 AND a.industry = 'software'
