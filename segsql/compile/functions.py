"""Which function calls a segment may make: an allowlist, not a denylist.

sqlglot parses the functions it knows into typed nodes (`exp.Sum`, `exp.DateTrunc`, ...): those
compute values and are allowed. A call sqlglot does not know becomes `exp.Anonymous`; it is
allowed only when it is listed here as a pure function of its dialect (computes a value, reads and
writes nothing, sleeps not, changes no setting) or declared by the project under `udfs:` in
segsql.yml (trusted config). Everything else (`pg_sleep`, `lo_export`, `query_to_xml`,
`set_config`, `pg_terminate_backend`, `dblink`, `nextval`, ...) is refused before anything runs.
"""

from __future__ import annotations

from sqlglot import exp

# Unmodelled pure functions, by dialect ("*": every dialect). Keep each list to functions whose
# documentation says they only compute a value from their arguments.
PURE_FUNCTIONS: dict[str, frozenset[str]] = {
    "*": frozenset({
        "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceiling", "cos", "cot", "degrees", "radians", "sin",
        "tan", "sign", "trunc", "width_bucket", "gcd", "lcm", "factorial", "isnan", "isinf", "isfinite",
        "left", "right", "lpad", "rpad", "split_part", "ends_with", "translate", "reverse", "ascii", "chr",
        "initcap", "strpos", "position", "instr", "regexp_matches", "regexp_split_to_array", "regexp_full_match",
        "array_position", "array_contains", "array_distinct", "array_sort", "array_append", "array_prepend",
        "array_cat", "array_remove", "cardinality", "date_diff", "datediff", "date_add", "date_sub",
        "make_date", "make_timestamp", "last_day", "dayofweek", "dayofyear", "weekofyear", "isodow", "isoyear",
        "epoch", "epoch_ms", "age", "to_char", "to_date", "to_timestamp", "justify_days", "bit_length",
        "octet_length", "char_length", "character_length", "nullif", "ifnull", "nvl", "nvl2", "decode",
        "percent_rank", "cume_dist", "ntile", "nth_value", "mode", "median", "kurtosis", "skewness",
        "entropy", "any_value", "bool_and", "bool_or", "every", "regr_slope", "regr_intercept", "corr",
        "covar_pop", "covar_samp", "listagg", "collect_list", "collect_set", "bit_and", "bit_or", "bit_xor",
        "md5_number", "sha1", "sha256", "sha512", "hash", "crc32", "base64", "from_base64", "to_base64",
    }),
    "duckdb": frozenset({
        "now", "today", "current_localtimestamp", "list_distinct", "list_contains", "list_has", "list_sort",
        "list_reverse_sort", "list_unique", "list_value", "list_extract", "list_element", "list_slice",
        "list_aggregate", "list_sum", "list_min", "list_max", "list_avg", "list_count", "list_filter",
        "list_transform", "list_reduce", "len", "array_length", "strlen", "strip_accents", "string_split",
        "str_split", "regexp_extract_all", "prefix", "suffix", "contains", "starts_with", "jaro_similarity",
        "jaro_winkler_similarity", "levenshtein", "damerau_levenshtein", "hamming", "editdist3",
        "datepart", "date_part", "dayname", "monthname", "yearweek", "century", "decade", "millennium",
        "time_bucket", "strftime", "strptime", "try_strptime", "make_time", "to_days", "to_months",
        "to_years", "to_hours", "to_minutes", "to_seconds", "to_weeks", "epoch_us", "epoch_ns",
        "struct_pack", "struct_extract", "row", "map_extract", "map_keys", "map_values", "element_at",
        "json_extract_string", "json_value", "json_array_length", "json_keys", "json_type", "json_valid",
        "arg_max", "arg_min", "max_by", "min_by", "histogram", "approx_quantile", "reservoir_quantile",
        "fsum", "favg", "product", "bitstring_agg", "array_to_string", "list_aggr", "flatten",
        "greatest_common_divisor", "least_common_multiple", "even", "gamma", "lgamma", "nextafter",
        "format_bytes", "formatreadablesize", "ilike_escape", "like_escape", "not_like_escape", "printf",
        "typeof",
    }),
    "postgres": frozenset({
        "date_part", "justify_hours", "justify_interval", "make_interval",
        "array_to_string", "string_to_array", "array_lower", "array_upper", "array_ndims", "array_dims",
        "regexp_replace", "regexp_match", "regexp_count", "regexp_substr", "regexp_instr", "quote_literal",
        "quote_ident", "quote_nullable", "to_number", "jsonb_extract_path_text", "json_extract_path_text",
        "jsonb_array_length", "json_array_length", "jsonb_typeof", "json_typeof", "num_nonnulls", "num_nulls",
        "bit_count", "get_byte", "get_bit", "encode", "decode", "convert_from", "convert_to", "starts_with",
    }),
    "spark": frozenset({
        "datediff", "months_between", "add_months", "next_day", "trunc", "date_format", "from_unixtime",
        "unix_timestamp", "to_unix_timestamp", "weekday", "quarter", "dayofmonth", "size", "array_join",
        "array_max", "array_min", "arrays_overlap", "array_union", "array_intersect", "array_except",
        "flatten", "element_at", "map_keys", "map_values", "get_json_object", "json_tuple", "levenshtein",
        "soundex", "substring_index", "format_number", "format_string", "bround", "pmod", "nanvl",
        "startswith", "endswith", "contains", "collect_list", "collect_set", "count_if", "max_by", "min_by",
        "percentile", "percentile_approx", "approx_percentile",
    }),
}


def unknown_function(node: exp.Expr, dialect: str, declared: frozenset[str]) -> str | None:
    """The name of an unmodelled function call that is neither known pure nor declared, else None."""
    if not isinstance(node, exp.Anonymous):
        return None
    name = str(node.this).lower()
    if name in declared or name in PURE_FUNCTIONS["*"] or name in PURE_FUNCTIONS.get(dialect, frozenset()):
        return None
    return name
