SELECT
  k AS account_id,
  first_purchase,
  last_purchase,
  days_since_last,
  recency,
  frequency,
  monetary,
  r_score,
  f_score,
  m_score,
  r_score * 100 + f_score * 10 + m_score AS rfm_score,
  CASE
    WHEN r_score >= 4 AND f_score >= 4 AND m_score >= 4
    THEN 'champions'
    WHEN r_score >= 3 AND f_score >= 4
    THEN 'loyal'
    WHEN r_score <= 2 AND f_score >= 3 AND m_score >= 4
    THEN 'at_risk_high_value'
    WHEN r_score <= 2 AND f_score >= 3
    THEN 'at_risk'
    WHEN r_score >= 4 AND f_score = 1
    THEN 'new_customers'
    WHEN r_score >= 4 AND f_score <= 3
    THEN 'potential_loyalists'
    WHEN r_score <= 2 AND f_score <= 2
    THEN 'hibernating'
    ELSE 'need_attention'
  END AS rfm_segment
FROM (
  SELECT
    k,
    first_purchase,
    last_purchase,
    days_since_last,
    recency,
    frequency,
    monetary,
    CASE
      WHEN days_since_last = MIN(days_since_last) OVER ()
      THEN 5
      ELSE CAST(FLOOR(
        CAST(5 * RANK() OVER (ORDER BY days_since_last DESC NULLS LAST) - 1 AS DOUBLE PRECISION) / COUNT(*) OVER ()
      ) + 1 AS INTEGER)
    END AS r_score,
    CASE
      WHEN frequency = MAX(frequency) OVER ()
      THEN 5
      ELSE CAST(FLOOR(
        CAST(5 * RANK() OVER (ORDER BY frequency ASC NULLS FIRST) - 1 AS DOUBLE PRECISION) / COUNT(*) OVER ()
      ) + 1 AS INTEGER)
    END AS f_score,
    CASE
      WHEN monetary = MAX(monetary) OVER ()
      THEN 5
      ELSE CAST(FLOOR(
        CAST(5 * RANK() OVER (ORDER BY monetary ASC NULLS FIRST) - 1 AS DOUBLE PRECISION) / COUNT(*) OVER ()
      ) + 1 AS INTEGER)
    END AS m_score
  FROM (
    SELECT
      k,
      MIN(d) AS first_purchase,
      MAX(d) AS last_purchase,
      DATEDIFF(DAY, MAX(d), CAST('2026-11-23' AS DATE)) AS days_since_last,
      DATEDIFF(DAY, MAX(d), CAST('2026-11-23' AS DATE)) AS recency,
      COUNT(*) AS frequency,
      SUM(amount) AS monetary
    FROM (
      SELECT
        account_id AS k,
        CAST(issued_at AS DATE) AS d,
        amount AS amount
      FROM (
        SELECT
          *
        FROM invoices
        WHERE
          issued_at IS NULL OR issued_at < CAST('2026-11-24' AS DATE)
      ) AS invoices
      WHERE
        (
          NOT account_id IS NULL
          AND CAST(issued_at AS DATE) <= CAST('2026-11-23' AS DATE)
          AND NOT amount IS NULL
        )
        AND (
          status = 'paid'
        )
    ) AS t
    GROUP BY
      k
  ) AS e
) AS s
