SELECT
    'conversion_rate' AS `kpi_id`,
    'month' AS `grain`,
    `p`.`period_start`,
    `p`.`period_end`,
    `p`.`is_complete_period`,
    CAST(NULL AS STRING) AS `channel`,
    CAST(NULL AS STRING) AS `device`,
    CAST(NULL AS STRING) AS `campaign`,
    CAST(`anon_1`.`value` AS FLOAT64) AS `value`,
    CAST(`anon_1`.`numerator` AS FLOAT64) AS `numerator`,
    CAST(`anon_1`.`denominator` AS FLOAT64) AS `denominator`,
    CAST(`anon_1`.`sample_size` AS INT64) AS `sample_size`,
    '988be4a44fd8' AS `definition_version`,
    CAST(CURRENT_TIMESTAMP AS TIMESTAMP) AS `computed_at`
FROM (
    SELECT
        `anon_2`.`period_start` AS `period_start`,
        CAST(`anon_2`.`value` AS FLOAT64) / CAST(nullif(CAST(`anon_3`.`value` AS FLOAT64), 0.0) AS FLOAT64) AS `value`,
        `anon_2`.`value` AS `numerator`,
        `anon_3`.`value` AS `denominator`,
        `anon_3`.`sample_size` AS `sample_size`
    FROM (
        SELECT
            `periods_1`.`period_start` AS `period_start`,
            coalesce(sum(`anon_4`.`total`), 0) AS `value`,
            NULL AS `numerator`,
            NULL AS `denominator`,
            coalesce(sum(`anon_4`.`n`), 0) AS `sample_size`
        FROM `kpi`.`periods` AS `periods_1`
        LEFT OUTER JOIN (
            SELECT
                `anon_5`.`day` AS `day`,
                sum(`anon_5`.`x`) AS `total`,
                count(`anon_5`.`x`) AS `nonnull`,
                min(`anon_5`.`x`) AS `low`,
                max(`anon_5`.`x`) AS `high`,
                count(*) AS `n`
            FROM (
                SELECT
                    `ga4_traffic`.`date` AS `day`,
                    `ga4_traffic`.`transactions` AS `x`
                FROM `raw`.`ga4_traffic`
            ) AS `anon_5`
            GROUP BY `anon_5`.`day`
        ) AS `anon_4` ON `anon_4`.`day` >= `periods_1`.`period_start`
            AND `anon_4`.`day` <= `periods_1`.`window_end`
        WHERE `periods_1`.`grain` = 'month'
        GROUP BY `periods_1`.`period_start`
    ) AS `anon_2`
    JOIN (
        SELECT
            `periods_2`.`period_start` AS `period_start`,
            coalesce(sum(`anon_6`.`total`), 0) AS `value`,
            NULL AS `numerator`,
            NULL AS `denominator`,
            coalesce(sum(`anon_6`.`n`), 0) AS `sample_size`
        FROM `kpi`.`periods` AS `periods_2`
        LEFT OUTER JOIN (
            SELECT
                `anon_7`.`day` AS `day`,
                sum(`anon_7`.`x`) AS `total`,
                count(`anon_7`.`x`) AS `nonnull`,
                min(`anon_7`.`x`) AS `low`,
                max(`anon_7`.`x`) AS `high`,
                count(*) AS `n`
            FROM (
                SELECT
                    `ga4_traffic`.`date` AS `day`,
                    `ga4_traffic`.`sessions` AS `x`
                FROM `raw`.`ga4_traffic`
            ) AS `anon_7`
            GROUP BY `anon_7`.`day`
        ) AS `anon_6` ON `anon_6`.`day` >= `periods_2`.`period_start`
            AND `anon_6`.`day` <= `periods_2`.`window_end`
        WHERE `periods_2`.`grain` = 'month'
        GROUP BY `periods_2`.`period_start`
    ) AS `anon_3` ON `anon_3`.`period_start` = `anon_2`.`period_start`
) AS `anon_1`
JOIN `kpi`.`periods` AS `p` ON `p`.`grain` = 'month'
    AND `p`.`period_start` = `anon_1`.`period_start`
ORDER BY `p`.`period_start`
