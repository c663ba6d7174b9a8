//! SeaORM models from rusqlite rows, for the reads a SQLite file answers on the calling thread
//! (`scan::SqliteReader::rows`).
//!
//! A statement built by SeaORM selects each entity's columns in the entity's declaration order,
//! aliased `A_<column>`, `B_<column>`, … when it selects more than one entity. A [`Rows`] plan
//! checks the statement's column names against that layout once per read, then decodes each row
//! by position into the models SeaORM's own selector would give (`SelectorTrait`), typed by each
//! column's definition, so that the same query gives the same items on either path
//! (`tests::both_paths_give_the_same_items`).

use rusqlite::types::ValueRef;
use sea_orm::sea_query::{ColumnType, Value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable,
    ModelTrait, QueryTrait, Select, SelectFiveModel, SelectModel, SelectThree, SelectThreeModel,
    SelectTwo, SelectTwoModel, SelectorTrait, TryIntoModel,
};

/// A selector whose rows can be decoded from rusqlite rows.
pub(crate) trait Rows: SelectorTrait {
    /// Where each entity's columns are, checked against the statement's column names.
    type Plan;

    /// Checks that `names` are this selector's columns, in order.
    fn plan(names: &[&str]) -> Result<Self::Plan, DbErr>;

    /// The item of one row.
    fn decode(plan: &Self::Plan, row: &rusqlite::Row<'_>) -> Result<Self::Item, DbErr>;
}

/// A row of plain values (what `into_tuple` reads), from either path.
pub(crate) trait Values: Sized {
    /// From a rusqlite row, by position.
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
    /// From a SeaORM row, by position.
    fn from_query(row: &sea_orm::QueryResult) -> Result<Self, DbErr>;
}

impl Values for String {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        row.get(0)
    }
    fn from_query(row: &sea_orm::QueryResult) -> Result<Self, DbErr> {
        row.try_get_by_index(0)
    }
}

impl Values for (String, i64) {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
    fn from_query(row: &sea_orm::QueryResult) -> Result<Self, DbErr> {
        Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?))
    }
}

/// A query and the selector that reads its rows (what `.all()` would use).
pub(crate) trait Fetch: QueryTrait {
    /// The selector.
    type Rows: Rows;
}

impl<E> Fetch for Select<E>
where
    E: EntityTrait,
    E::Model: Decoded,
{
    type Rows = SelectModel<E::Model>;
}

impl<E, F, G, T> Fetch for SelectThree<E, F, G, T>
where
    E: EntityTrait,
    E::Model: Decoded,
    F: EntityTrait,
    F::Model: Decoded,
    G: EntityTrait,
    G::Model: Decoded,
    T: sea_orm::Topology,
{
    type Rows = SelectThreeModel<E::Model, F::Model, G::Model>;
}

impl<E, F> Fetch for SelectTwo<E, F>
where
    E: EntityTrait,
    E::Model: Decoded,
    F: EntityTrait,
    F::Model: Decoded,
{
    type Rows = SelectTwoModel<E::Model, F::Model>;
}

/// How a column's SQLite value becomes the value its model field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    BigInt,
    Int,
    SmallInt,
    Bool,
    Double,
    Bytes,
}

impl Kind {
    fn of(t: &ColumnType) -> Result<Self, DbErr> {
        Ok(match t {
            ColumnType::Char(_) | ColumnType::String(_) | ColumnType::Text => Self::Text,
            ColumnType::BigInteger => Self::BigInt,
            ColumnType::Integer => Self::Int,
            ColumnType::SmallInteger => Self::SmallInt,
            ColumnType::Boolean => Self::Bool,
            ColumnType::Double => Self::Double,
            ColumnType::Blob | ColumnType::Binary(_) | ColumnType::VarBinary(_) => Self::Bytes,
            other => {
                return Err(DbErr::Type(format!(
                    "no rusqlite decoding for column type {other:?}"
                )));
            }
        })
    }

    fn null(self) -> Value {
        match self {
            Self::Text => Value::String(None),
            Self::BigInt => Value::BigInt(None),
            Self::Int => Value::Int(None),
            Self::SmallInt => Value::SmallInt(None),
            Self::Bool => Value::Bool(None),
            Self::Double => Value::Double(None),
            Self::Bytes => Value::Bytes(None),
        }
    }

    fn value(self, v: ValueRef<'_>) -> Result<Value, DbErr> {
        let mismatch = || DbErr::Type(format!("a {self:?} column holds {:?}", v.data_type()));
        Ok(match (self, v) {
            (_, ValueRef::Null) => self.null(),
            (Self::Text, ValueRef::Text(t)) => Value::String(Some(
                std::str::from_utf8(t)
                    .map_err(|e| DbErr::Type(e.to_string()))?
                    .to_owned(),
            )),
            (Self::BigInt, ValueRef::Integer(i)) => Value::BigInt(Some(i)),
            (Self::Int, ValueRef::Integer(i)) => {
                Value::Int(Some(i32::try_from(i).map_err(|_| mismatch())?))
            }
            (Self::SmallInt, ValueRef::Integer(i)) => {
                Value::SmallInt(Some(i16::try_from(i).map_err(|_| mismatch())?))
            }
            (Self::Bool, ValueRef::Integer(i)) => Value::Bool(Some(i != 0)),
            (Self::Double, ValueRef::Real(f)) => Value::Double(Some(f)),
            (Self::Double, ValueRef::Integer(i)) =>
            {
                #[allow(clippy::cast_precision_loss, reason = "SQLite's own REAL affinity")]
                Value::Double(Some(i as f64))
            }
            (Self::Bytes, ValueRef::Blob(b)) => Value::Bytes(Some(b.to_vec())),
            _ => return Err(mismatch()),
        })
    }
}

/// One entity's columns in a row: from position `at`, in declaration order.
pub(crate) struct Part<E: EntityTrait> {
    at: usize,
    columns: Vec<(E::Column, Kind)>,
}

impl<E: EntityTrait> Part<E>
where
    E::ActiveModel: TryIntoModel<E::Model>,
    E::Model: ModelTrait<Entity = E>,
{
    /// Checks that `names[at..]` starts with this entity's columns, prefixed with `prefix`.
    fn plan(names: &[&str], at: usize, prefix: &str) -> Result<Self, DbErr> {
        let mut columns = Vec::new();
        for (i, col) in E::Column::iter().enumerate() {
            let name = names.get(at + i).copied().unwrap_or_default();
            if name.strip_prefix(prefix) != Some(col.as_str()) {
                return Err(DbErr::Type(format!(
                    "column {} is {name:?}, not {prefix}{}",
                    at + i,
                    col.as_str()
                )));
            }
            columns.push((col, Kind::of(col.def().get_column_type())?));
        }
        Ok(Self { at, columns })
    }

    /// Position of the next entity's first column.
    fn end(&self) -> usize {
        self.at + self.columns.len()
    }

    /// The model, or `None` when every column is NULL (an outer join that matched nothing).
    fn decode(&self, row: &rusqlite::Row<'_>) -> Result<Option<E::Model>, DbErr> {
        let cell = |i: usize| row.get_ref(self.at + i).map_err(sqlite_err);
        let mut all_null = true;
        for i in 0..self.columns.len() {
            if cell(i)? != ValueRef::Null {
                all_null = false;
                break;
            }
        }
        if all_null {
            return Ok(None);
        }
        let mut m = E::ActiveModel::default();
        for (i, (col, kind)) in self.columns.iter().enumerate() {
            m.try_set(*col, kind.value(cell(i)?)?)?;
        }
        m.try_into_model().map(Some)
    }
}

pub(crate) fn sqlite_err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("sqlite read: {e}"))
}

/// A model that [`Part`] decodes: every SeaORM model whose entity's active model builds it.
/// (One bound for the selectors below instead of three per model.)
pub(crate) trait Decoded: FromQueryResult + Sized {
    /// Where its columns are.
    type Part;

    /// Checks that `names[at..]` starts with its columns prefixed with `prefix`, and returns
    /// where they are and where the next model's start.
    fn part(names: &[&str], at: usize, prefix: &str) -> Result<(Self::Part, usize), DbErr>;

    /// The model, or `None` when every one of its columns is NULL.
    fn decode(part: &Self::Part, row: &rusqlite::Row<'_>) -> Result<Option<Self>, DbErr>;

    /// The model, which the row must hold.
    fn required(part: &Self::Part, row: &rusqlite::Row<'_>) -> Result<Self, DbErr> {
        Self::decode(part, row)?.ok_or_else(|| DbErr::Type("a row without its main entity".into()))
    }
}

impl<M> Decoded for M
where
    M: ModelTrait + FromQueryResult,
    M::Entity: EntityTrait<Model = M>,
    <M::Entity as EntityTrait>::ActiveModel: TryIntoModel<M>,
{
    type Part = Part<M::Entity>;

    fn part(names: &[&str], at: usize, prefix: &str) -> Result<(Self::Part, usize), DbErr> {
        let p = Part::plan(names, at, prefix)?;
        let end = p.end();
        Ok((p, end))
    }

    fn decode(part: &Self::Part, row: &rusqlite::Row<'_>) -> Result<Option<M>, DbErr> {
        part.decode(row)
    }
}

impl<M: Decoded> Rows for SelectModel<M> {
    type Plan = M::Part;

    fn plan(names: &[&str]) -> Result<Self::Plan, DbErr> {
        let (a, end) = M::part(names, 0, "")?;
        exactly(names, end)?;
        Ok(a)
    }

    fn decode(plan: &Self::Plan, row: &rusqlite::Row<'_>) -> Result<M, DbErr> {
        M::required(plan, row)
    }
}

impl<M: Decoded, N: Decoded> Rows for SelectTwoModel<M, N> {
    type Plan = (M::Part, N::Part);

    fn plan(names: &[&str]) -> Result<Self::Plan, DbErr> {
        let (a, end) = M::part(names, 0, "A_")?;
        let (b, end) = N::part(names, end, "B_")?;
        exactly(names, end)?;
        Ok((a, b))
    }

    fn decode(plan: &Self::Plan, row: &rusqlite::Row<'_>) -> Result<Self::Item, DbErr> {
        Ok((M::required(&plan.0, row)?, N::decode(&plan.1, row)?))
    }
}

impl<M: Decoded, N: Decoded, O: Decoded> Rows for SelectThreeModel<M, N, O> {
    type Plan = (M::Part, N::Part, O::Part);

    fn plan(names: &[&str]) -> Result<Self::Plan, DbErr> {
        let (a, end) = M::part(names, 0, "A_")?;
        let (b, end) = N::part(names, end, "B_")?;
        let (c, end) = O::part(names, end, "C_")?;
        exactly(names, end)?;
        Ok((a, b, c))
    }

    fn decode(plan: &Self::Plan, row: &rusqlite::Row<'_>) -> Result<Self::Item, DbErr> {
        Ok((
            M::required(&plan.0, row)?,
            N::decode(&plan.1, row)?,
            O::decode(&plan.2, row)?,
        ))
    }
}

impl<M: Decoded, N: Decoded, O: Decoded, P: Decoded, Q: Decoded> Rows
    for SelectFiveModel<M, N, O, P, Q>
{
    type Plan = (M::Part, N::Part, O::Part, P::Part, Q::Part);

    fn plan(names: &[&str]) -> Result<Self::Plan, DbErr> {
        let (a, end) = M::part(names, 0, "A_")?;
        let (b, end) = N::part(names, end, "B_")?;
        let (c, end) = O::part(names, end, "C_")?;
        let (d, end) = P::part(names, end, "D_")?;
        let (e, end) = Q::part(names, end, "E_")?;
        exactly(names, end)?;
        Ok((a, b, c, d, e))
    }

    fn decode(plan: &Self::Plan, row: &rusqlite::Row<'_>) -> Result<Self::Item, DbErr> {
        Ok((
            M::required(&plan.0, row)?,
            N::decode(&plan.1, row)?,
            O::decode(&plan.2, row)?,
            P::decode(&plan.3, row)?,
            Q::decode(&plan.4, row)?,
        ))
    }
}

fn exactly(names: &[&str], n: usize) -> Result<(), DbErr> {
    if names.len() == n {
        Ok(())
    } else {
        Err(DbErr::Type(format!(
            "the statement selects {} columns where its models have {n}",
            names.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
        QueryFilter, QueryOrder, QuerySelect, QueryTrait, SelectFiveModel, SelectModel,
    };

    use super::Rows;
    use crate::SeaStore;
    use crate::entity::{asset, membership, organization, session, team, team_member, user};

    /// The items of `stmt` through sqlx, as SeaORM reads them.
    async fn through_sqlx<S: Rows>(store: &SeaStore, stmt: sea_orm::Statement) -> Vec<S::Item> {
        store
            .reader()
            .query_all_raw(stmt)
            .await
            .unwrap()
            .into_iter()
            .map(|r| S::from_raw_query_result(r).unwrap())
            .collect()
    }

    fn org(id: &str) -> organization::Model {
        organization::Model {
            id: id.into(),
            name: format!("Org {id} «ü»"),
            plan: "enterprise".into(),
            profile: "{}".into(),
            access: "{}".into(),
            security: "{\"x\":1}".into(),
            created_at: 1_763_893_815,
            lock_version: 3,
            audit_archived_at: (id == "o2").then_some(-5),
            limit_overrides: (id == "o1").then(|| "{}".into()),
            limit_overrides_plan: (id == "o1").then(|| "pro".into()),
        }
    }

    async fn seeded() -> (tempfile::TempDir, SeaStore) {
        let (dir, store) = crate::temp_sqlite_store().await;
        let db = store.db();
        for o in ["o1", "o2"] {
            org(o).into_active_model().insert(db).await.unwrap();
        }
        for (id, hash) in [("u1", Some("$argon2id$h")), ("u2", None), ("u3", None)] {
            user::Model {
                id: id.into(),
                email: format!("{id}@rows.example"),
                name: format!("Person {id} \u{1F600}"),
                password_hash: hash.map(Into::into),
                created_at: i64::MAX,
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
        }
        // u1 is in both organizations, u2 only in o1 (deactivated), u3 in none.
        for (o, u, role, gone) in [
            ("o1", "u1", "owner", None),
            ("o2", "u1", "admin", None),
            ("o1", "u2", "user", Some(42)),
        ] {
            membership::Model {
                org_id: o.into(),
                user_id: u.into(),
                role: role.into(),
                joined_at: 7,
                deactivated_at: gone,
                all_teams_role: gone.map(|_| "viewer".into()),
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
        }
        for (id, o, name, default, archived) in [
            ("t1", "o1", "Default", true, None),
            ("t2", "o1", "Research", false, Some(9)),
            ("t3", "o2", "Default", true, None),
        ] {
            team::Model {
                id: id.into(),
                org_id: o.into(),
                name: name.into(),
                is_default: default,
                created_at: 0,
                archived_at: archived,
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
        }
        for (t, u, o, role) in [
            ("t1", "u1", "o1", "admin"),
            ("t2", "u1", "o1", "viewer"),
            ("t1", "u2", "o1", "member"),
        ] {
            team_member::Model {
                team_id: t.into(),
                user_id: u.into(),
                org_id: o.into(),
                role: role.into(),
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
        }
        for (id, parent, host) in [("a1", None, Some("chat.example")), ("a2", Some("a1"), None)] {
            asset::Model {
                id: id.into(),
                org_id: "o1".into(),
                team_id: "t1".into(),
                kind: "chat_interface".into(),
                name: format!("Asset {id}"),
                parent_id: parent.map(Into::into),
                created_by: "u1".into(),
                created_at: 1,
                updated_at: 2,
                size_bytes: i64::MIN,
                hostname: host.map(Into::into),
                details: "{\"model\":\"m\"}".into(),
                archived_at: parent.map(|_| 3),
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
        }
        for (id, u, ended) in [
            ("s1", "u1", None),
            ("s2", "u3", None),
            ("s3", "u2", Some(5)),
        ] {
            session::Model {
                id: id.into(),
                token_hash: format!("hash-{id}"),
                user_id: u.into(),
                created_at: 1,
                last_seen_at: 2,
                ended_at: ended,
                ip: "203.0.113.9".into(),
                user_agent: "agent".into(),
                signed_out_of: String::new(),
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn both_paths_give_the_same_items() {
        let (_dir, store) = seeded().await;
        assert!(store.sqlite_reads.is_some(), "a SQLite file is read inline");

        // One entity: booleans both ways, an optional integer set and unset.
        let teams = team::Entity::find().order_by_asc(team::Column::Id);
        let fast = store.fetch_all(teams.clone()).await.unwrap();
        assert_eq!(fast.len(), 3);
        assert!(fast.iter().any(|t| t.is_default) && fast.iter().any(|t| !t.is_default));
        assert_eq!(fast, teams.all(store.reader()).await.unwrap());

        // Every column kind the models hold, with extreme integers.
        let assets = asset::Entity::find()
            .filter(asset::Column::OrgId.eq("o1"))
            .order_by_asc(asset::Column::Id)
            .limit(10);
        let fast = store.fetch_all(assets.clone()).await.unwrap();
        assert_eq!(fast.len(), 2);
        assert_eq!(fast, assets.all(store.reader()).await.unwrap());

        // Plain values: a column, and a column with an aggregate.
        let ids = session::Entity::find()
            .select_only()
            .column(session::Column::UserId)
            .order_by_asc(session::Column::UserId);
        let fast = store.fetch_values::<String>(ids.clone()).await.unwrap();
        assert_eq!(fast, ["u1", "u2", "u3"]);
        assert_eq!(
            fast,
            ids.into_tuple::<String>()
                .all(store.reader())
                .await
                .unwrap()
        );
        let newest = session::Entity::find()
            .select_only()
            .column(session::Column::UserId)
            .column_as(session::Column::CreatedAt.max(), "seen")
            .group_by(session::Column::UserId)
            .order_by_asc(session::Column::UserId);
        let fast = store
            .fetch_values::<(String, i64)>(newest.clone())
            .await
            .unwrap();
        assert_eq!(fast, [("u1".into(), 1), ("u2".into(), 1), ("u3".into(), 1)]);
        assert_eq!(
            fast,
            newest
                .into_tuple::<(String, i64)>()
                .all(store.reader())
                .await
                .unwrap()
        );

        // Two entities joined.
        let members = membership::Entity::find()
            .order_by_asc(membership::Column::OrgId)
            .order_by_asc(membership::Column::UserId)
            .find_also_related(user::Entity);
        let fast = store.fetch_all(members.clone()).await.unwrap();
        assert_eq!(fast.len(), 3);
        assert_eq!(fast, members.all(store.reader()).await.unwrap());

        // Three entities: memberships with their organizations and team roles.
        let roles = membership::Entity::find()
            .find_also_related(organization::Entity)
            .find_also_related(team_member::Entity)
            .order_by_asc(membership::Column::OrgId)
            .order_by_asc(membership::Column::UserId)
            .order_by_asc(team_member::Column::TeamId);
        let fast = store.fetch_all(roles.clone()).await.unwrap();
        assert_eq!(fast.len(), 4);
        assert!(
            fast.iter().any(|(_, _, t)| t.is_none()),
            "o2 has no team role"
        );
        assert_eq!(fast, roles.all(store.reader()).await.unwrap());

        // Five entities, outer joins that match nothing included: a person in two
        // organizations, one in none, an ended session, an unknown token.
        type Five = SelectFiveModel<
            session::Model,
            user::Model,
            membership::Model,
            organization::Model,
            team_member::Model,
        >;
        for (token, rows) in [("hash-s1", 3), ("hash-s2", 1), ("hash-s3", 0), ("nope", 0)] {
            let stmt = crate::store::session_caller_statement(DbBackend::Sqlite, token);
            let fast = store.fetch_rows::<Five>(stmt.clone()).await.unwrap();
            assert_eq!(fast.len(), rows, "{token}");
            assert_eq!(fast, through_sqlx::<Five>(&store, stmt).await, "{token}");
            if token == "hash-s2" {
                let (_, u, m, o, t) = &fast[0];
                assert!(u.is_some() && m.is_none() && o.is_none() && t.is_none());
            }
        }
    }

    #[test]
    fn each_kind_takes_its_sqlite_values_and_refuses_others() {
        use super::Kind;
        use rusqlite::types::ValueRef as R;
        use sea_orm::Value as V;
        let ok = [
            (
                Kind::Text,
                R::Text("ü".as_bytes()),
                V::String(Some("ü".into())),
            ),
            (
                Kind::BigInt,
                R::Integer(i64::MIN),
                V::BigInt(Some(i64::MIN)),
            ),
            (Kind::Int, R::Integer(-7), V::Int(Some(-7))),
            (Kind::SmallInt, R::Integer(300), V::SmallInt(Some(300))),
            (Kind::Bool, R::Integer(0), V::Bool(Some(false))),
            (Kind::Bool, R::Integer(1), V::Bool(Some(true))),
            (Kind::Double, R::Real(0.5), V::Double(Some(0.5))),
            (Kind::Double, R::Integer(2), V::Double(Some(2.0))),
            (Kind::Bytes, R::Blob(&[1, 2]), V::Bytes(Some(vec![1, 2]))),
            (Kind::Int, R::Null, V::Int(None)),
            (Kind::Text, R::Null, V::String(None)),
        ];
        for (kind, sql, want) in ok {
            assert_eq!(kind.value(sql).unwrap(), want, "{kind:?}");
        }
        let refused = [
            (Kind::Text, R::Integer(1)),
            (Kind::Text, R::Blob(&[0xff])),
            (Kind::Text, R::Text(&[0xff, 0xfe])),
            (Kind::BigInt, R::Text(b"1")),
            (Kind::Int, R::Integer(i64::from(i32::MAX) + 1)),
            (Kind::SmallInt, R::Integer(40_000)),
            (Kind::Bool, R::Real(1.0)),
            (Kind::Bytes, R::Text(b"x")),
        ];
        for (kind, sql) in refused {
            assert!(kind.value(sql).is_err(), "{kind:?} took {sql:?}");
        }
    }

    #[tokio::test]
    async fn a_statement_that_does_not_match_its_models_is_refused() {
        let (_dir, store) = seeded().await;
        // The users table read as teams: refused by its column names, not decoded by position.
        let stmt = user::Entity::find().build(DbBackend::Sqlite);
        let err = store
            .fetch_rows::<SelectModel<team::Model>>(stmt)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"column 1 is "email", not org_id"#),
            "{err}"
        );
        // A partial select of the right table: refused for its missing columns.
        let stmt = team::Entity::find()
            .select_only()
            .column(team::Column::Id)
            .column(team::Column::OrgId)
            .build(DbBackend::Sqlite);
        assert!(
            store
                .fetch_rows::<SelectModel<team::Model>>(stmt)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_value_rusqlite_is_not_given_is_left_to_sqlx() {
        let (_dir, store) = seeded().await;
        let reads = store.sqlite_reads.clone().unwrap();
        // A character: the inline reader binds integers, reals, text and bytes only.
        let stmt = sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            r#"SELECT "teams"."id", "teams"."org_id", "teams"."name", "teams"."is_default", "teams"."created_at", "teams"."archived_at" FROM "teams" WHERE ? = 'a'"#,
            [sea_orm::Value::Char(Some('a'))],
        );
        assert!(
            reads
                .rows::<SelectModel<team::Model>>(&stmt)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .fetch_rows::<SelectModel<team::Model>>(stmt)
                .await
                .unwrap()
                .len(),
            3
        );
    }

    #[tokio::test]
    async fn a_busy_database_is_left_to_the_sqlx_readers() {
        let (dir, store) = seeded().await;
        store.close().await.unwrap();
        // A writer holding the file exclusively in rollback-journal mode keeps readers out
        // (under WAL, as the store runs, only SQLite's recovery of the WAL does).
        let path = dir.path().join("store.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("PRAGMA journal_mode=DELETE; BEGIN EXCLUSIVE;")
            .unwrap();
        let reads = crate::scan::SqliteReader::new(path, std::time::Duration::from_secs(30));
        let stmt = team::Entity::find().build(DbBackend::Sqlite);
        let started = std::time::Instant::now();
        let got = reads.rows::<SelectModel<team::Model>>(&stmt).unwrap();
        assert!(got.is_none(), "busy: left to the caller's other path");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the read on the calling thread does not wait for the lock"
        );
        holder.execute_batch("COMMIT").unwrap();
        let got = reads.rows::<SelectModel<team::Model>>(&stmt).unwrap();
        assert_eq!(got.map(|t| t.len()), Some(3));
    }
}
