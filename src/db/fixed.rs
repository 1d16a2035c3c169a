//! Statements of fixed text that diesel keeps prepared.
//!
//! diesel compiles every `UPDATE` again on every call: its `SET` clause can
//! change with the values (an `Option` field skips its column), so it marks
//! all of them unsafe to cache. On the second step's path two of them ran
//! once per code, and compiling them was most of their time on SQLite's
//! one writer (docs/PERFORMANCE.md, "Issue 14: the writer's work per
//! code"). A statement here is its SQL text, split where the values go,
//! and the values; each statement is its own type, which is the cache's
//! key, so two statements can never share a prepared one. Written by hand:
//! diesel has no way to say "this UPDATE is always the same text".

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType};

/// The text of one statement: `PARTS.len()` is one more than the number
/// of values, which go between the parts. Only constant SQL here, never
/// anything a request sent.
pub trait FixedSql: 'static {
    const PARTS: &'static [&'static str];
}

/// Statement `S` with its `N` values (all `BIGINT`).
pub struct Fixed<S, const N: usize> {
    values: [i64; N],
    statement: PhantomData<S>,
}

impl<S: FixedSql, const N: usize> Fixed<S, N> {
    /// Refused at compile time when the parts do not fit the values.
    const FITS: () = assert!(
        S::PARTS.len() == N + 1,
        "a fixed statement needs one part more than values"
    );

    pub fn new(values: [i64; N]) -> Self {
        let () = Self::FITS;
        Self {
            values,
            statement: PhantomData,
        }
    }
}

impl<S: FixedSql, const N: usize> QueryId for Fixed<S, N> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S: FixedSql, const N: usize, DB> QueryFragment<DB> for Fixed<S, N>
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        for (i, part) in S::PARTS.iter().enumerate() {
            out.push_sql(part);
            if let Some(value) = self.values.get(i) {
                out.push_bind_param::<BigInt, i64>(value)?;
            }
        }
        Ok(())
    }
}

impl<S, const N: usize, C> diesel::RunQueryDsl<C> for Fixed<S, N> {}

impl<S: FixedSql, const N: usize> Fixed<S, N> {
    /// Run it on the backend's own connection (`db`, "Hot paths"), where a
    /// prepared statement is found by its type without writing its SQL.
    pub fn run(self, c: &mut super::Conn) -> QueryResult<usize> {
        crate::on_backend!(c, |c| diesel::RunQueryDsl::execute(self, c))
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    use super::*;

    struct SetB;
    impl FixedSql for SetB {
        const PARTS: &'static [&'static str] = &["UPDATE t SET b = ", " WHERE a = ", ""];
    }
    struct SetA;
    impl FixedSql for SetA {
        const PARTS: &'static [&'static str] = &["UPDATE t SET a = ", " WHERE b = ", ""];
    }

    /// Each statement runs its own text with its own values, again and
    /// again, prepared once; two statements with the same shape are not
    /// confused.
    #[test]
    fn each_statement_runs_its_own_text() {
        // On a `Conn`, with `run`, as the server runs them (`run` hands each
        // one to SQLite's own connection and its cache).
        let mut c = crate::db::Conn::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        c.batch_execute("CREATE TABLE t (a BIGINT, b BIGINT); INSERT INTO t VALUES (1, 10), (2, 20);")
            .unwrap();
        let cached = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = cached.clone();
        c.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_string());
            }
        });
        for round in 0..3 {
            assert_eq!(Fixed::<SetB, 2>::new([100 + round, 1]).run(&mut c).unwrap(), 1);
            assert_eq!(Fixed::<SetA, 2>::new([5 + round, 20]).run(&mut c).unwrap(), 1);
            assert_eq!(Fixed::<SetB, 2>::new([0, 99]).run(&mut c).unwrap(), 0);
        }
        let rows: Vec<(i64, i64)> = diesel::sql_query("SELECT a, b FROM t ORDER BY b")
            .load::<Pair>(&mut c)
            .unwrap()
            .into_iter()
            .map(|p| (p.a, p.b))
            .collect();
        assert_eq!(rows, vec![(7, 20), (1, 102)]);
        assert_eq!(
            *cached.lock().unwrap(),
            ["UPDATE t SET b = ? WHERE a = ?", "UPDATE t SET a = ? WHERE b = ?"]
        );
    }

    #[derive(diesel::QueryableByName)]
    struct Pair {
        #[diesel(sql_type = BigInt)]
        a: i64,
        #[diesel(sql_type = BigInt)]
        b: i64,
    }
}
