"""Cue lexicons of the crypto-policy classifier.

Phrases are matched case-insensitively on word boundaries; a space also matches a hyphen, and
``{a,b}`` expands to alternatives (``ban{,s,ned}`` -> ban, bans, banned). ``ACRONYMS`` are
matched case-sensitively ("SEC" the regulator, not "sec"). A phrase may carry several tags.

Tags: ``crypto`` (the article is about crypto-assets), ``state`` (a public authority;
``state_weak``: words like "country" that only hint at one),
``action`` (a policy verb), ``neg:*`` (signs of market, hack or company news) and
``cat:<category>`` (cue of one category; ``CAT:<category>`` is a strong cue).
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "legal_tender",
    "reserve",
    "mining_energy",
    "regulation",
    "taxation",
    "multilateral",
    "cooperation",
    "cbdc",
)

# Central bank digital currencies by name: each is a crypto term and a strong CBDC cue.
_CBDC_NAMES = (
    "|digital lira|digital turkish lira|digital won|digital shekel|digital krona|e krona"
    "|digital hryvnia|e hryvnia|digital tenge|digital baht|digital rand|digital real|drex"
    "|digital riyal|digital dirham|e cedi|digital som|digital manat|e peso|digital peso"
    "|digital rial|digital taka|e hkd|digital kina|bakong|digital lari|digital shilling"
)

LEXICON: dict[str, str] = {
    # crypto-assets
    "crypto": "bitcoin{,s}|btc|crypto{,s}|crypto currenc{y,ies}|cryptocurrenc{y,ies}"
    "|crypto asset{,s}|cryptoasset{,s}|digital asset{,s}|virtual asset{,s}"
    "|virtual currenc{y,ies}|stablecoin{,s}"
    "|blockchain{,s}|ether|ethereum|tether|usdt|usdc|altcoin{,s}|web3|defi|nft{,s}|vasp{,s}"
    "|crypto mining|bitcoin mining|hashrate|hash rate|satoshi{,s}|crypto industry|token{,s}"
    "|digital currenc{y,ies}|e cny|digital yuan|digital rupee|e rupee|digital euro|digital pound"
    "|digital ruble|digital rouble|e naira|digital dollar|cbdc{,s}"
    + _CBDC_NAMES
    + "|solana|cardano|xrp|ripple"
    "|dogecoin|litecoin|binance|coinbase|kraken|ftx|crypto exchange{,s}|mining rig{,s}",
    # public authorities
    "state": "government{,s}|govt|ministry|ministries|minister{,s}|ministerial|central bank{,s}"
    "|parliament{,s}|parliamentary|congress|congressional|senate|senator{,s}|lawmaker{,s}"
    "|legislator{,s}|legislature{,s}|legislative|national assembly|assembly|regulator{,s}"
    "|regulatory authorit{y,ies}|authorities|president|presidential|prime minister|premier"
    "|cabinet|treasury|finance ministry|ministry of finance|state owned|state run|sovereign"
    "|sovereign wealth fund|state bank|monetary authority|financial authority"
    "|securities commission|governor{,s}|court|supreme court|constitutional court|judge{,s}"
    "|kremlin|white house|federal|crypto council|bitcoin office|public funds|taxpayer{,s}"
    "|policymaker{,s}|policy makers|lawmaking|decree|executive order|tax authorit{y,ies}"
    "|finance minister|state legislature|house of representatives"
    # state utilities and budget laws act for the state too (tariffs for miners, tax rates)
    "|state utility|state owned utility|state power company|state electricity company"
    "|state energy company|national utility|public utility|power utility|electricity utility"
    "|grid operator|national grid|draft budget|budget bill|budget law|state budget"
    "|finance act|finance bill|tax code|law enforcement|police|prosecutor{,s}",
    # weak signs of a public actor ("the country", "officials")
    "state_weak": "department|agency|public sector|nation|country|countries|jurisdiction{,s}"
    "|state{,s}|national|officials",
    # policy verbs
    "action": "sign{,s,ed,ing}|approv{e,es,ed,ing,al}|pass{,es,ed,ing}|adopt{,s,ed,ing,ion}"
    "|announc{e,es,ed,ing,ement}|propos{e,es,ed,ing,al,als}|plan{,s,ned,ning}|ban{,s,ned,ning}"
    "|block{,s,ed,ing}|veto{,es,ed}|launch{,es,ed,ing}|introduc{e,es,ed,ing}|enact{,s,ed,ing}"
    "|legaliz{e,es,ed,ing,ation}|legalis{e,es,ed,ing,ation}|consult{,s,ed,ing,ation}"
    "|urg{e,es,ed,ing}|call{s,ed} on|call{s,ed} for|warn{,s,ed,ing}|impos{e,es,ed,ing}"
    "|exempt{,s,ed,ion}|repeal{,s,ed,ing}|strike|struck down|allocat{e,es,ed,ing}|join{,s,ed}"
    "|collaborat{e,es,ed,ing}|agree{,s,d}|prohibit{,s,ed,ing}|restrict{,s,ed,ing}"
    "|crack{,s,ed} down|crackdown|order{,s,ed}|requir{e,es,ed}|mandat{e,es,ed}"
    "|authoriz{e,es,ed}|authoris{e,es,ed}|bu{y,ys,ying}|bought|acquir{e,es,ed,ing}"
    "|purchas{e,es,ed,ing}|sell{,s,ing}|sold|accumulat{e,es,ed,ing}|creat{e,es,ed,ing}"
    "|establish{,es,ed,ing}|set up|appoint{,s,ed}|vot{e,es,ed,ing}|rul{e,ed,ing}"
    "|draft{,s,ed}|pilot{,s,ed,ing}|expand{,s,ed,ing}|suspend{,s,ed}|unveil{,s,ed}"
    "|decid{e,es,ed}|consider{,s,ing}|mull{,s,ed,ing}|reject{,s,ed}|halt{,s,ed}"
    "|commit{,s,ted}|implement{,s,ed,ing}|amend{,s,ed,ing,ment}|abolish{,es,ed}|revok{e,ed}"
    "|outlaw{,s,ed}|stockpil{e,es,ed,ing}|invest{,s,ed,ing}|hold{,s}|held"
    "|rais{e,es,ed,ing}|hik{e,es,ed}|tighten{,s,ed,ing}|cap{s,ped}|pledg{e,es,ed}"
    "|recogniz{e,es,ed}|recognis{e,es,ed}|grant{,s,ed}|seiz{e,es,ed}|confiscat{e,es,ed}"
    "|t{ake,akes,ook} effect|c{ome,omes,ame} into force|ent{er,ers,ered} into force"
    "|went into effect|goes into effect",
    # negative signs: market / price news
    "neg:market": "price{,s}|rall{y,ies,ied}|surg{e,es,ed}|plung{e,es,ed}|soar{,s,ed}"
    "|jump{,s,ed}|all time high{,s}|bullish|bearish|liquidat{ed,ions}|traders|trading volume"
    "|market cap|market capitalization|resistance|support level|technical analysis"
    "|analyst{,s}|futures|open interest|whale{,s}|inflow{,s}|outflow{,s}|halving|rebound{,s,ed}"
    "|sell off|selloff|volatil{e,ity}|memecoin{,s}|meme coin{,s}|dogecoin|price action"
    "|bull run|bull market|bear market|investors",
    # negative signs: hacks and crime
    "neg:hack": "hack{,s,ed,er,ers}|exploit{,s,ed}|stolen|theft|breach{,es}|drained"
    "|attacker{,s}|vulnerabilit{y,ies}|phishing|heist",
    # negative signs: company news
    "neg:company": "earnings|revenue{,s}|quarter|quarterly|shares|stock|net loss|profit{,s}"
    "|ipo|public debut|per share|premarket|nasdaq|nyse|startup{,s}|valuation|venture funding"
    "|funding round|outage|upgrade|mainnet|testnet|users|customers|product{,s}|ceo"
    "|the company|its customers|subpoena|layer 2|l2"
    "|treasury company|treasury firm|treasury strategy|corporate treasury"
    "|bitcoin treasury company|bitcoin treasury firm|crypto treasury company|treasury companies"
    "|listed company|listed firm|share issuance|bond issuance|shareholder{,s}|convertible notes",
    # categories
    "CAT:legal_tender": "legal tender|legal currency|official currency|bitcoin acceptance"
    "|acceptance of bitcoin|mandatory acceptance|acceptance voluntary|voluntary acceptance",
    "cat:legal_tender": "bitcoin law|currency status|means of payment|medium of exchange"
    "|accept bitcoin|national currency|acceptance|required to accept|accept the cryptocurrency"
    "|accept it|official cryptocurrency|national cryptocurrency|own cryptocurrency",
    "CAT:reserve": "bitcoin reserve{,s}|crypto reserve{,s}|strategic bitcoin reserve"
    "|digital asset reserve|digital asset stockpile|crypto stockpile|bitcoin stockpile"
    "|bitcoin holdings|btc holdings|crypto holdings|bitcoin treasury|bitcoin fund",
    "cat:reserve": "reserve{,s}|stockpil{e,es,ed,ing}|holdings|sovereign wealth fund"
    "|state owned|seized|confiscated|buy the dip|accumulat{e,es,ed,ing}|wallet{,s}"
    "|public funds|treasury|bought|buys|acquired|purchased|sold|selling|sale{,s}|invest{,ed,ing}",
    "CAT:mining_energy": "crypto mining|bitcoin mining|cryptocurrency mining|mining farm{,s}"
    "|mining operation{,s}|miners|mining",
    "cat:mining_energy": "electricity|power|energy|megawatt{,s}|gigawatt{,s}|mw|gw|grid"
    "|hydropower|hydroelectric|power plant{,s}|surplus power|electricity tariff{,s}"
    "|power consumption|hashrate|hash rate|data center{,s}|data centre{,s}",
    "CAT:regulation": "regulatory framework|legal framework|licensing regime|licen{c,s}e{,s}"
    "|licen{c,s}ing|regulat{e,es,ed,ing,ion,ions}|legaliz{e,es,ed,ing}|legalis{e,es,ed,ing}"
    "|crackdown|oversight|supervision|aml|anti money laundering|stablecoin bill"
    "|stablecoin law|stablecoin framework|securities law{,s}|consumer protection"
    "|investor protection|without authorization|not allowed|prohibit{,s,ed,ion}|sandbox"
    "|compliance|crypto law|crypto bill|digital asset law|market structure|mica"
    "|regulator{,s}|regulatory|rulebook|trading ban|outlaw{,s,ed}",
    "cat:regulation": "law{,s}|bill|act|rules|framework|ban{,s,ned}|authori{z,s}ation"
    "|exchange{,s}|registration|guideline{,s}|legislation|council",
    "CAT:taxation": "tax|taxes|taxation|taxed|taxing|capital gains|tax exemption|tax reporting"
    "|tax free|income tax|withholding tax|excise|levy|levies|carf",
    "cat:taxation": "exempt{,ion}|tax authorit{y,ies}|revenue authority|fiscal",
    "CAT:cooperation": "memorandum of understanding|mou|letter of intent|bilateral"
    "|cooperation agreement|partnership agreement|official visit|joint statement",
    "cat:cooperation": "cooperat{e,ion}|co operation|collaborat{e,es,ed,ing,ion}|partnership{,s}"
    "|alliance|agreement{,s}|met with|visit{,s,ed}|delegation|hosts|hosted|talks|summit"
    "|harmoniz{e,ation}|harmonis{e,ation}|cross border|working group|joint"
    "|pledg{e,es,ed}|information sharing|share information|extradit{e,ion}|task force"
    "|mutual legal assistance|counterpart{,s}|both countries|two countries",
    "CAT:cbdc": "cbdc{,s}|central bank digital currenc{y,ies}|digital yuan|e cny|e yuan"
    "|digital rupee|e rupee|digital euro|digital pound|digital ruble|digital rouble|e naira"
    "|sand dollar|dcash|mbridge|wholesale digital|retail digital|digital renminbi" + _CBDC_NAMES,
    "cat:cbdc": "digital currenc{y,ies}|digital dollar|digital version",
}

# Case-sensitive cues (acronyms and proper names).
ACRONYMS: dict[str, str] = {
    "state": "SEC|CFTC|FCA|FSA|FSC|IRS|HMRC|DOJ|ECB|BIS|OCC|FDIC|Fed|Treasury|Senate|Congress"
    "|Parliament|Duma|Knesset|Bundestag|Rada|National Assembly|Ministry of Finance",
    "crypto": "BTC|ETH|CBDC|CBDCs|VASP|VASPs|MiCA",
    "CAT:regulation": "MiCA|GENIUS Act|CLARITY Act|FIT21|VASP|VASPs|AML",
}

# Multilateral bodies: alias -> canonical name.
MULTILATERAL: dict[str, str] = {
    "IMF": "IMF",
    "International Monetary Fund": "IMF",
    "World Bank": "World Bank",
    "FATF": "FATF",
    "Financial Action Task Force": "FATF",
    "BIS": "BIS",
    "Bank for International Settlements": "BIS",
    "OECD": "OECD",
    "Organisation for Economic Co-operation and Development": "OECD",
    "Organization for Economic Cooperation and Development": "OECD",
    "G20": "G20",
    "G-20": "G20",
    "Group of Twenty": "G20",
    "G7": "G7",
    "G-7": "G7",
    "FSB": "FSB",
    "Financial Stability Board": "FSB",
    "EU": "EU",
    "European Union": "EU",
    "European Commission": "EU",
    "European Parliament": "EU",
    "European Central Bank": "ECB",
    "ECB": "ECB",
    "ESMA": "ESMA",
    "European Banking Authority": "EBA",
    "Basel Committee": "BCBS",
    "BCBS": "BCBS",
    "IOSCO": "IOSCO",
    "United Nations": "UN",
    "Asian Development Bank": "ADB",
    "African Development Bank": "AfDB",
    "BEAC": "BEAC",
    "CEMAC": "CEMAC",
    "Beac": "BEAC",
    "Cemac": "CEMAC",
    "Bank of Central African States": "BEAC",
    "ECCB": "ECCB",
}

# Of those, the ones the labelling rule calls multilateral (IMF, World Bank, FATF, BIS, EU,
# OECD, G20, FSB and their close kin); regional central banks count as state actors only.
MULTILATERAL_CATEGORY: frozenset[str] = frozenset(
    {
        "IMF",
        "World Bank",
        "FATF",
        "BIS",
        "OECD",
        "G20",
        "G7",
        "FSB",
        "EU",
        "ECB",
        "ESMA",
        "EBA",
        "BCBS",
        "IOSCO",
        "UN",
    }
)
