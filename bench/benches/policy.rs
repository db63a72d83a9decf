//! Classification throughput of the policy engine, in statements per
//! second.
//!
//! The corpora are generated deterministically (a fixed-seed xorshift picks
//! templates and values), so every run measures the same text:
//!
//! * `short`: pgbench-like single statements — the point selects, updates
//!   and inserts of the TPC-B-like script, with literal values as
//!   `pgbench -M simple` sends them, plus BEGIN/END.
//! * `long`: multi-kilobyte statements — reporting queries with several
//!   CTEs and CASE expressions, data-modifying CTEs, and CREATE FUNCTION
//!   with PL/pgSQL bodies — the statements that exercise body decoding
//!   and nested analysis.
//!
//! Each corpus is measured as one statement per Query (what a driver sends)
//! and, for `short`, as a whole transaction in one Query (the splitter).
//! Criterion reports elements (statements) per second.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice::policy::{classify, classify_with, ClassifyOptions, NoPreparedStatements};
use sluice_bench::XorShift;

fn short_corpus(n: usize) -> Vec<String> {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    (0..n)
        .map(|_| {
            let aid = rng.below(10_000_000) + 1;
            let tid = rng.below(100) + 1;
            let bid = rng.below(10) + 1;
            let delta = rng.below(10_000) as i64 - 5_000;
            match rng.below(7) {
                0 => "BEGIN;".to_owned(),
                1 => format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};"),
                2 => format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
                3 => format!("UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};"),
                4 => format!("UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid};"),
                5 => format!(
                    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, CURRENT_TIMESTAMP);"
                ),
                _ => "END;".to_owned(),
            }
        })
        .collect()
}

fn report_query(rng: &mut XorShift) -> String {
    let mut sql = String::from("WITH ");
    let ctes = 6 + rng.below(4);
    for c in 0..ctes {
        if c > 0 {
            sql.push_str(",\n");
        }
        sql.push_str(&format!(
            "c{c} AS (\n  SELECT o.customer_id, date_trunc('day', o.created_at) AS day,\n    \
             sum(CASE WHEN o.status = 'shipped' THEN o.amount ELSE 0 END) AS shipped,\n    \
             count(*) FILTER (WHERE o.status <> 'cancelled') AS n, -- per day\n    \
             string_agg(DISTINCT o.note, '; ' ORDER BY o.note) AS notes\n  \
             FROM orders o JOIN customers cu ON cu.id = o.customer_id\n  \
             WHERE o.created_at > now() - interval '{} days' AND cu.region = 'r{}'\n  \
             /* region filter */ GROUP BY 1, 2)",
            rng.below(90) + 1,
            rng.below(20)
        ));
    }
    sql.push_str("\nSELECT c0.customer_id, c0.day, c0.shipped");
    for c in 1..ctes {
        sql.push_str(&format!(" + coalesce(c{c}.shipped, 0)"));
    }
    sql.push_str("\nFROM c0");
    for c in 1..ctes {
        sql.push_str(&format!(
            "\n  LEFT JOIN c{c} ON c{c}.customer_id = c0.customer_id AND c{c}.day = c0.day"
        ));
    }
    sql.push_str("\nORDER BY 3 DESC LIMIT 100");
    sql
}

fn function_definition(rng: &mut XorShift) -> String {
    let mut body = String::new();
    for k in 0..20 + rng.below(10) {
        body.push_str(&format!(
            "  IF v_total > {k} THEN\n    UPDATE accounts SET balance = balance - {k} WHERE id = p_id;\n    \
             INSERT INTO audit (account_id, note) VALUES (p_id, 'step {k}: it''s done');\n  \
             ELSE\n    PERFORM pg_notify('acct', p_id::text);\n  END IF;\n"
        ));
    }
    format!(
        "CREATE OR REPLACE FUNCTION settle_{}(p_id bigint) RETURNS void LANGUAGE plpgsql AS $fn$\n\
         DECLARE v_total numeric;\nBEGIN\n  SELECT sum(amount) INTO v_total FROM ledger WHERE account_id = p_id;\n\
         {body}END;\n$fn$",
        rng.below(1000)
    )
}

fn modifying_cte(rng: &mut XorShift) -> String {
    let mut sql =
        String::from("WITH moved AS (DELETE FROM queue WHERE ready_at < now() RETURNING *)");
    for k in 0..30 {
        sql.push_str(&format!(
            ", s{k} AS (SELECT id, payload->>'k{k}' AS v FROM moved WHERE (payload->>'kind') = 'k{}')",
            rng.below(50)
        ));
    }
    sql.push_str(" INSERT INTO archive SELECT id, v FROM s0");
    for k in 1..30 {
        sql.push_str(&format!(" UNION ALL SELECT id, v FROM s{k}"));
    }
    sql
}

fn long_corpus(n: usize) -> Vec<String> {
    let mut rng = XorShift(0x5eed_1234_abcd_0002);
    (0..n)
        .map(|_| match rng.below(3) {
            0 => report_query(&mut rng),
            1 => function_definition(&mut rng),
            _ => modifying_cte(&mut rng),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let options = ClassifyOptions::default();
    let short = short_corpus(10_000);
    let long = long_corpus(300);
    let long_bytes: usize = long.iter().map(|s| s.len()).sum();
    eprintln!(
        "policy corpus: short {} statements (avg {} bytes), long {} statements (avg {} bytes)",
        short.len(),
        short.iter().map(|s| s.len()).sum::<usize>() / short.len(),
        long.len(),
        long_bytes / long.len()
    );

    let mut group = c.benchmark_group("policy_classify");
    group.throughput(Throughput::Elements(short.len() as u64));
    group.bench_function("short", |b| {
        b.iter(|| {
            for sql in &short {
                black_box(classify_with(
                    black_box(sql),
                    &options,
                    &NoPreparedStatements,
                ));
            }
        })
    });
    let joined = short.join("\n");
    group.bench_function("short_one_query", |b| {
        b.iter(|| black_box(classify(black_box(&joined))))
    });
    group.throughput(Throughput::Elements(long.len() as u64));
    group.bench_function("long", |b| {
        b.iter(|| {
            for sql in &long {
                black_box(classify_with(
                    black_box(sql),
                    &options,
                    &NoPreparedStatements,
                ));
            }
        })
    });
    group.finish();

    let mut bytes = c.benchmark_group("policy_classify_bytes");
    bytes.throughput(Throughput::Bytes(long_bytes as u64));
    bytes.bench_function("long", |b| {
        b.iter(|| {
            for sql in &long {
                black_box(classify(black_box(sql)));
            }
        })
    });
    bytes.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
