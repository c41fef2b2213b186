//! `nova_api.flavor_extra_specs`: the rows behind a flavor's extra specs. Nova's API writes
//! their values (it validates them); steward reads the rows a repair is about to change for the
//! journal's before-image, and a rollback puts their `created_at` and `updated_at` back once
//! the API has put the values back, guarded by those values.

use std::collections::BTreeMap;

use sqlx::mysql::MySqlDatabaseError;
use sqlx::Row;

use super::{sql, NovaDb, NovaDbError};

/// One row of `flavor_extra_specs` as the journal keeps it (timestamps `YYYY-MM-DD HH:MM:SS`,
/// None when NULL).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtraSpecRow {
    pub key: String,
    pub value: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// MySQL's refusals that mean steward's account may not read or write `flavor_extra_specs`
/// (a grant limited to the tables the repair rewrites directly), or that the table is not
/// there: the caller then keeps to values through Nova's API.
const NO_ACCESS: [u16; 4] = [
    1044, // ER_DBACCESS_DENIED_ERROR
    1142, // ER_TABLEACCESS_DENIED_ERROR
    1143, // ER_COLUMNACCESS_DENIED_ERROR
    1146, // ER_NO_SUCH_TABLE
];

impl NovaDbError {
    /// The database refused steward the table (no grant, no table), as opposed to an outage.
    pub fn is_no_access(&self) -> bool {
        match self {
            NovaDbError::Sql { source, .. } => source
                .as_database_error()
                .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
                .is_some_and(|m| NO_ACCESS.contains(&m.number())),
            _ => false,
        }
    }
}

const SELECT_ROWS: &str = "SELECT s.id, s.`key`, s.value, CAST(s.created_at AS CHAR), \
     CAST(s.updated_at AS CHAR) FROM flavor_extra_specs s JOIN flavors f ON f.id = s.flavor_id \
     WHERE f.flavorid = ? ORDER BY s.id";

type Rows = Vec<(i64, ExtraSpecRow)>;

fn rows(found: Vec<sqlx::mysql::MySqlRow>) -> Result<Rows, NovaDbError> {
    found
        .into_iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(sql("API"))?,
                ExtraSpecRow {
                    key: r.try_get(1).map_err(sql("API"))?,
                    value: r
                        .try_get::<Option<String>, _>(2)
                        .map_err(sql("API"))?
                        .unwrap_or_default(),
                    created_at: r.try_get(3).map_err(sql("API"))?,
                    updated_at: r.try_get(4).map_err(sql("API"))?,
                },
            ))
        })
        .collect()
}

impl NovaDb {
    /// The rows of flavor `flavorid` (the id Nova's API shows) for `keys`, by key; a key
    /// without a row is absent.
    pub async fn flavor_extra_spec_rows(
        &self,
        flavorid: &str,
        keys: &[&str],
    ) -> Result<BTreeMap<String, ExtraSpecRow>, NovaDbError> {
        let _wait = self.wait();
        let found = sqlx::query(SELECT_ROWS)
            .bind(flavorid)
            .fetch_all(&self.api)
            .await
            .map_err(sql("API"))?;
        Ok(rows(found)?
            .into_iter()
            .filter(|(_, r)| keys.contains(&r.key.as_str()))
            .map(|(_, r)| (r.key.clone(), r))
            .collect())
    }

    /// Put `created_at` and `updated_at` of `stamps` back, in one transaction with the
    /// flavor's rows locked, if every key of `expected` still holds its value (None: no row)
    /// and every row of `stamps` its own. False (nothing written) when one changed meanwhile.
    pub async fn restamp_flavor_extra_specs(
        &self,
        flavorid: &str,
        expected: &BTreeMap<String, Option<String>>,
        stamps: &[ExtraSpecRow],
    ) -> Result<bool, NovaDbError> {
        let _wait = self.wait();
        let mut tx = self.api.begin().await.map_err(sql("API"))?;
        let found = sqlx::query(&format!("{SELECT_ROWS} FOR UPDATE"))
            .bind(flavorid)
            .fetch_all(&mut *tx)
            .await
            .map_err(sql("API"))?;
        let current = rows(found)?;
        let value = |key: &str| {
            current
                .iter()
                .find(|(_, r)| r.key == key)
                .map(|(id, r)| (*id, r.value.as_str()))
        };
        let holds = expected
            .iter()
            .all(|(k, v)| value(k).map(|(_, now)| now) == v.as_deref())
            && stamps
                .iter()
                .all(|s| value(&s.key).map(|(_, now)| now) == Some(s.value.as_str()));
        if !holds {
            tx.rollback().await.map_err(sql("API"))?;
            return Ok(false);
        }
        for s in stamps {
            let Some((id, _)) = value(&s.key) else {
                continue;
            };
            sqlx::query(
                "UPDATE flavor_extra_specs SET created_at = ?, updated_at = ? WHERE id = ?",
            )
            .bind(&s.created_at)
            .bind(&s.updated_at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sql("API"))?;
        }
        tx.commit().await.map_err(sql("API"))?;
        Ok(true)
    }
}
