{#
    One row per transaction with clear names and decoded codes. A plain projection of the raw
    table (no window, no join), so a filter on trans_date reaches the raw table's date index.
#}
with

source as (
    select * from {{ source('raw', 'fin_trans') }}
),

decoded as (
    select
        trans_id,
        account_id,
        date as trans_date,
        case type
            when 'PRIJEM' then 'credit'
            when 'VYDAJ' then 'debit'
            when 'VYBER' then 'cash_withdrawal'
        end as transaction_type,
        case operation
            when 'VYBER KARTOU' then 'card_withdrawal'
            when 'VKLAD' then 'cash_credit'
            when 'PREVOD Z UCTU' then 'collection_from_other_bank'
            when 'VYBER' then 'cash_withdrawal'
            when 'PREVOD NA UCET' then 'remittance_to_other_bank'
            else 'unspecified'
        end as operation,
        case k_symbol
            when 'POJISTNE' then 'insurance_payment'
            when 'SLUZBY' then 'statement_fee'
            when 'UROK' then 'interest_credited'
            when 'SANKC. UROK' then 'sanction_interest'
            when 'SIPO' then 'household_payment'
            when 'DUCHOD' then 'old_age_pension'
            when 'UVER' then 'loan_payment'
            else 'unspecified'
        end as category,
        case when type = 'PRIJEM' then 1 else -1 end as direction,
        abs(amount) as amount,
        case when type = 'PRIJEM' then abs(amount) else -abs(amount) end as signed_amount,
        balance as balance_after,
        nullif(btrim(bank), '') as counterparty_bank,
        nullif(btrim(account), '') as counterparty_account,
        type as transaction_type_code,
        operation as operation_code,
        k_symbol as category_code
    from source
),

classified as (
    select
        *,
        -- the kind the behavioural statistics compare a transaction with: its purpose when
        -- the bank characterised it, else how it was made, else its direction
        case
            when category <> 'unspecified' then category
            when operation <> 'unspecified' then operation
            when direction = 1 then 'other_credit'
            else 'other_debit'
        end as transaction_kind,
        counterparty_bank is not null and counterparty_account is not null as has_counterparty
    from decoded
)

select
    trans_id,
    account_id,
    trans_date,
    date_trunc('month', trans_date)::date as trans_month,
    transaction_type,
    operation,
    category,
    transaction_kind,
    direction,
    amount,
    signed_amount,
    balance_after,
    case when has_counterparty then counterparty_bank end as counterparty_bank,
    case when has_counterparty then counterparty_account end as counterparty_account,
    has_counterparty,
    transaction_type_code,
    operation_code,
    category_code
from classified
