{#
    One row per account with everything static the features need: the account, its owner, the
    owner's district demographics, the account's first card and its latest loan.
#}
with

accounts as (
    select * from {{ ref('stg_accounts') }}
),

owners as (
    select * from {{ ref('int_account_owners') }}
),

districts as (
    select * from {{ ref('stg_districts') }}
),

dispositions as (
    select * from {{ ref('stg_dispositions') }}
),

cards as (
    select * from {{ ref('stg_cards') }}
),

loans as (
    select * from {{ ref('stg_loans') }}
),

account_cards as (
    select
        dispositions.account_id,
        cards.card_id,
        cards.card_type,
        cards.issued_date,
        count(*) over (partition by dispositions.account_id) as card_count,
        row_number() over (
            partition by dispositions.account_id order by cards.issued_date, cards.card_id
        ) as card_rank
    from cards
    inner join dispositions
        on cards.disp_id = dispositions.disp_id
),

first_cards as (
    select * from account_cards where card_rank = 1
),

latest_loans as (
    select distinct on (account_id) *
    from loans
    order by account_id, granted_date desc, loan_id desc
),

final as (
    select
        accounts.account_id,
        accounts.opened_date,
        accounts.statement_frequency,
        accounts.district_id as account_district_id,
        owners.owner_client_id,
        owners.owner_disp_id,
        owners.owner_birth_date,
        owners.owner_sex,
        owners.owner_district_id,
        owner_districts.district_name as owner_district_name,
        owner_districts.region as owner_region,
        owner_districts.average_salary as owner_district_average_salary,
        coalesce(
            owner_districts.unemployment_rate_1996_pct, owner_districts.unemployment_rate_1995_pct
        ) as owner_district_unemployment_rate_pct,
        owner_districts.urban_ratio_pct as owner_district_urban_ratio_pct,
        coalesce(
            owner_districts.crimes_1996_per_1000, owner_districts.crimes_1995_per_1000
        ) as owner_district_crimes_per_1000,
        coalesce(owners.disponent_count, 0) as disponent_count,
        coalesce(owners.disponent_count, 0) > 0 as has_disponent,
        first_cards.card_id as first_card_id,
        first_cards.card_type as first_card_type,
        first_cards.issued_date as first_card_issued_date,
        coalesce(first_cards.card_count, 0) as card_count,
        latest_loans.loan_id,
        latest_loans.granted_date as loan_granted_date,
        latest_loans.amount as loan_amount,
        latest_loans.duration_months as loan_duration_months,
        latest_loans.monthly_payment as loan_monthly_payment,
        latest_loans.loan_status
    from accounts
    left join owners
        on accounts.account_id = owners.account_id
    left join districts as owner_districts
        on owners.owner_district_id = owner_districts.district_id
    left join first_cards
        on accounts.account_id = first_cards.account_id
    left join latest_loans
        on accounts.account_id = latest_loans.account_id
)

select * from final
