/**
 * 3000 SentencePiece-style BPE merges, in merge order ("\u2581" marks a word start), learned from the
 * Markdown docs and skills of openclaw 2026.9.6 (text split on spaces; a line's first word without the
 * word-start mark; words seen at least twice).
 * They give the tiny test model a tokenizer that packs English, Markdown and JSON like a real model's
 * does, so an OpenClaw request is about as many tokens as it would be in production. Data only.
 */
export const BPE_PIECES: readonly string[] = `
▁a re -- in ▁t on he at er ▁s or en es ▁c it ▁the ed ▁p nd ▁re ---- ro ion al is le ing an de ▁\` ▁f
▁and ar ▁m ac ▁w ▁b ent st ▁n ut la ic ▁in ot un ▁| ct -------- ▁d ▁e ▁o il ur ate lo se id ▁to ess
pen ode me iv ad ▁or ag ▁st up et om ▁con ation ho ver ol ig ly law ts ay ▁pro ▁ex el lu ul ▁- ▁th
\`\` ▁C ab ▁is ce ▁on ch sp ▁de ▁for as pt ▁T ▁" us ist red ▁r all ▁it way ▁< s. ive ▁S ▁not ▁A
---------------- ity ateway ain ▁wit ▁O qu gin pp and ▁l ack ▁H ▁an ri res ect ▁g ## hen lugin ec
age ir ter ▁run ▁G ▁ch s, if co im ▁com claw ession fig ep open odel ame wn ck am ▁do ork ann vid ▁R
** ▁I ▁al ▁with ex ke ers ▁h ▁be est ▁} ▁that \`, ort ▁v openclaw ore ▁lo em ▁tr ou ult pl ▁( ▁{
▁are span ▁-- ▁Open ord ub act fa low ime =" end ile ▁ag ▁as ren Claw ▁plugin \`\`\` ap rom art ▁D
▁config ▁cont ▁[ ▁app ▁model ▁aut ▁requ ard annel ail ▁Gateway ▁session ▁The ▁P vider ▁when </ to
▁ret ▁can ▁ro ▁work ▁un ▁se ▁inst able ▁ac her ace read ▁ne use ill cord ▁OpenClaw ▁U ▁of ▁agent ext
▁rem ire ve ory ▁M s: ▁so ated ▁}, ▁from ▁set port 's ▁ke ment 2: time ▁H2: ▁ho ▁its "> bo ▁us urity
-s ies fault ss cess ws ple span> fore vi ▁W lect ha cal ▁own ▁tool ust ▁en ▁res ice ue ble con ary
ang ▁provider ▁only ding mand urn um heck ath ▁by clu -------------------------------- ach cri ▁ad
▁pre ai ative ", ▁use ▁dis ▁rep ▁id aturity per ase ial led erv ▁/ out sion ▁up ▁** ▁before ure
▁does ▁cla ▁fail ]( ▁at rent und ▁y ](/ itle get ▁act fe ption ▁channel ▁install very es. val pro
▁select ry ok fter back agent hout no ide th plic ▁co put po ew plicit ash iz ▁no ▁im ▁F pe ▁class
</span> ound ▁E ▁check ud ead ▁inclu che ▁command irect js so ▁per Name ▁sup ▁path ": ug roup \`.
▁auth rol ubl maturity isting ▁default ▁remain ▁host ▁without The ▁same ▁className ="maturity
▁className="maturity ject olic es, ▁val json ▁</ ▁he rit ans ▁read atch mit ▁le odex com ▁N unt ▁one
ind ▁wh nect ▁\`openclaw --- ed. tr li olicy orm ured ▁out ant ild essage ▁after ▁call atus ▁back
▁runtime ▁still Ac ff ▁ver ▁over ▁explicit ip ▁native urrent file ▁keep ility ▁L av ▁B ine PI ▁Con
inal ▁open ▁direct plet other LI ▁chang our rows op ken ugh ▁their ▁local og ▁ar 00 cordion
Accordion vent div ener ▁key ▁\`-- ▁man ning load ting rough plugin feren ▁retain air ▁upd abled ix
ull rowser bash ▁need ▁rest lay aila ▁this ▁ent ▁1 run ote ▁through pts ▁<a ▁su sh ults eb ▁also
orts ata urf view St iel ▁appro ▁existing ield ical ▁start count ication gateway ▁exec ▁pres app the
▁comp pm ▁request arget ▁sour ailable ions mary ▁policy space ▁rout ▁ident int ible ▁state ▁trans
▁publ ator ▁current ▁Y ▁sha ▁record ▁fil s/ des uth ▁title gr cript ▁qu ▁met ▁CLI ential ). ▁setup
ma ▁ref own ual ▁mo ▁If sing box one ▁gateway ▁sho ▁mode ▁\`\`\` ution ference redential ▁you ates
hat der mis ▁configured ▁reg channel be ▁connect covery ink ▁\`s ages ctor urface ass ▁Codex ▁turn
▁complet ia board ▁uses arch <span ▁source 3: kill ▁title=" str ▁av tool io nal ▁new ### arate erver
▁allow ▁cle ▁bot s\` ▁true ▁return ▁send ▁sh ▁sec ▁node ▁H3: ▁bound model mpt ▁Do ence uration
▁requi ▁API ing, ▁/> stall ▁In ▁resol ▁file annot ▁You -in ▁repl ask ▁text ▁sep ror ▁target ▁writ
only ackage ▁including ▁token \`\`\`bash ache jo lock ▁cap ▁credential ▁att ▁className="maturity-
mission ▁status ▁la ance ▁\`/ ported ▁browser work bs ▁autom ee ▁separate his irst ▁add Step ▁list
-p imit ▁while -c riv vel ▁option ▁cannot ▁approval ▁message ▁2 ht ▁V uild faults ▁then ▁fall set
▁cre ▁must ▁but adata ormal ▁instead ▁It ▁shared ▁sy ery vers ret ▁oper ests ▁account pend sum
▁exact Id ations ait ▁profile ong ▁runs ▁valid side stem ▁regist action lease ▁verif iness ing. ▁sub
▁UI ▁dec -st error -only AI ▁your andbox ▁update ▁group ▁workspace trol ation. ▁access shot list OS
▁owner ries ▁active ▁gener resh EN CP ted ▁first ▁control spect ick ream ▁Re ▁other ▁stay e: ll
ability ark ▁Use apt div> ▁jo ▁metadata liv aged ▁context ▁acce ▁process Open ▁selected ▁into
▁identity rid ▁normal atal ▁ID ▁pl indo .. RL ▁className="maturity-s ish atalog ous ved title ▁serv
▁\\ arn ▁live ▁plugins Ke ype ite hose ▁main "\` -re viders lient ▁available ▁chat ▁\`m ▁und ▁log
▁pers ▁Ex abl ▁author ▁\`p ▁time emory ▁error igr ternal ▁hand ib are
▁-------------------------------- ▁each "><span ▁sche ▁URL line ied ▁event istory ▁never ▁output
▁env bound ▁enabled when ▁remo ation, vior havior level ▁off ▁exp ly. ater ▁sco ▁if ▁\`c ▁every
▁block ign Card ▁J ▁has config nap ▁keeps ▁nam npm ention ▁user oice ▁openclaw ax uct ▁clean
readiness ▁field ress ▁require ▁po ele ▁limit ▁des ven ON ures ready ▁under ▁rece ▁package ▁files mb
acy alse bel napshot ▁full mary: ample -m for ollow ▁/>[ ▁catalog ▁Rout edia usted ▁str ▁— ▁image
▁clo ▁int ron ▁end vice ▁An ▁This ave ating ▁mess ge ision fer pos elated ▁dur issing ccess
▁behavior ten Hub provider ▁deliv form acts text ▁gu ▁input Con ▁skill ▁fallback ▁remains ▁ol
▁defaults inu ▁them default ▁match ▁automat ▁task ── ▁Related ▁worker ▁Head ▁reject ▁Run .m ▁prompt
▁orig ed, ▁For xy ▁sp aram rivate kno >\` ▁optional \`\`\`json hent ▁load ▁aud ▁Control ishe chang
▁setting auth ▁client gacy lack inding ▁cleanup ings: ▁may spon ▁Route: ▁Headings: -agent ight
▁sandbox ree ▁rec ▁non ▁result ▁already TT ▁restart read_ ▁Ch ced ▁sessions ▁contain ▁Pro uld
▁snapshot allow arning ▁St ▁disp arness ▁preserv For ▁it. onment ▁version Accordion> title: when:
summary: ▁service read_when: ▁bund ▁reports ▁hook ▁another ironment ves ▁bo ▁sto ces row fix ▁hel
▁migr ▁history ▁memory ▁requires ▁both ak airing ▁vis ▁delivery In ▁transcript ▁inter ▁such min
▁checks ▁inspect edit ▁models ▁<Accordion ▁</Accordion> acOS ▁reference inary iag ists LA ▁Set writ
erve ▁me less ▁child ▁det ▁convers ▁sc ▁any ▁requests ffect ▁bec ason ▁See ▁code atab ▁directory
▁recovery OpenClaw session ▁release ▁entry ▁className="maturity-readiness cription ▁name ized
▁remote gram mitted iagno ▁support ▁server active ▁cache ▁cho ride ▁connection cel ibility er. ▁mark
▁Dis ▁pass ond known ▁Git ▁maturity flow ▁accept point SON gent ▁running ▁follow ▁configuration
▁wait ▁again ast ▁doc TTP ▁Q ▁inde fil ives ▁col ▁page round ansp local ▁execution tif ▁npm oc
▁build ▁doctor ▁replac ful ▁On Re ▁prep ints ▁review ▁thread ement mo ▁className="maturity-surface
aw wit idate ▁failure rop ross ▁commands ude -n PEN ▁missing ending ▁needs arts stic /0 cker core
iagnostic ▁edit ▁final off man ▁appl cle ▁those ▁authent du _A ustom ▁route exec ▁startup ▁Com ▁stop
▁than ther laude atabase ▁3 ▁dele ize ▁JSON ▁true, ails hip s) gateway/ ▁arch install aut ▁change
▁respon ▁HTTP ▁gr ▁selection // ition atche ▁link ded ▁all ▁De ▁managed -level ership erm ulti ich
-own KE ▁+ ▁\`d -pro ▁entries indow uil ▁\`re ake elegram Group ▁root lus ▁want ▁environment ▁repair
▁retry ▁\`g -run ▁tools ict ▁capt ▁supp ▁\`agent ▁override ▁conf top ▁head yp Use ument hell ▁device
</span></ ▁messages irm ▁row \`\`\`json5 ify ause onical ▁test ▁lif ▁harness If unts -me ▁When ▁cand
QL ▁macOS ystem ▁activ ▁OpenAI ▁false Pro ▁valu ft ities ▁= -b Gateway ▁private ars ise ayload
▁explicitly ▁search ▁system OPEN Field ▁returns ansport KEY ▁required enc Param not _KEY comp
▁onboard ▁success dinary Tab ▁operator -owned ▁content ▁\`gateway ▁capability ParamField lob ▁cop
▁contr ▁unt here available perator ▁permission ▁legacy ▁records ▁Node token openai ycle ▁even we
▁changes host ▁artif alth ground ▁→ ▁action CLA ▁\`session ▁report ▁reach ▁real ecif ▁original
](/gateway/ ▁web ▁providers api Key erminal ▁plus oog oogle key icated ▁supported CLAW tp ▁backend
ecycle ▁base ias ▁database ▁SQL ra ▁wid mbed ], ▁flow ▁names ▁example ▁should ▁ass Run ashboard empt
▁type ▁Web ▁proxy ▁\`f command Auth ▁failed ▁media ▁later ▁Config _API yn ▁binding ▁sav ▁discovery
alk -t ▁scope ▁pin cripts ▁persist CLAW_ ecific ▁que ables ▁bundled hook ▁sk ▁they node cket
_API_KEY ▁conversation ▁5 ool ▁owns ▁value ▁pending ▁className="maturity-readiness- ref ▁external
▁workflow ▁<span> ished ▁payload ▁visible ... connect ▁diagnostic ▁until lag ▁ownership ▁App sit
▁MCP ▁candidate den ▁cancel s; ▁see lobal -f ▁Doctor ▁voice ▁isol ▁pri ▁fresh ▁timeout ection ▁dif
▁job ▁complete ▁<Step ▁</Step <span> word ▁SQLite ired json\` ▁bounded rib pose ▁trusted ▁canonical
▁include ▁syn te ▁attach ▁stays .0 ▁loop ▁reason ices ▁overrid ▁(default ▁reply ▁terminal ini
▁unchang ▁DM udget ▁project ▁these ▁\`b ▁reads
▁---------------------------------------------------------------- AT ▁sum ▁apply .md sec ▁compat
▁which ith Note requ down ▁pairing ▁part ▁retains operator ▁stream ▁pa name ▁includes ute ▁// label
ger mpty ▁matching ber ses ▁\`" ▁\`t Note> ▁sign ▁older ▁lifecycle p> ▁(\` ▁obs ▁preserves ▁alias
▁</Step> ▁fin App -plugin ▁<div ▁\`OPEN ▁4 ▁---------------- ▁embed uilt ose afe ▁What ▁Discord
▁\`\`\`bash 12 Ex ▁rows ▁validation hod ▁store valid ization ▁automatical ▁endpoint ), ▁tim ▁applies
true its SH ▁via url ▁schema ▁transport ▁Ad throp thropic ▁profil ▁starts ▁confirm Ch ▁surface
▁failures ifest ▁second ward ▁completion ▁order Keep ▁during ▁unavailable ▁manual rets ments 02
▁create ▁across ▁because ------------ ▁depend ▁En ▁custom ▁pr eta ▁Claw openclaw/ ▁next atter ▁using
▁fails ▁window ktop ▁installed dul ▁budget s> ▁Sec ▁empty ixed ▁successful ▁recorded When ▁laun
▁warning ▁values ▁enable ▁paths ▁results ▁long ▁have ▁effect ▁ap bar ▁[" ▁GitHub ather ▁channels
▁credentials ▁public ▁el ▁inside lama ▁shows ▁allowlist ▁\`st plugins/ ped ▁once ▁contract ▁show
▁previ </span><span ▁className="maturity-surface-me .1 ▁refresh ane edi atri atrix pped eam ▁ACP
▁ordinary ▁flag dis ▁response indows -g vidence /m ▁Work s:// ▁write inux ▁form Group> ▁port ▁fields
ways -key ▁par ▁admission ▁label ▁Se ither http tain ▁Ho ilities -sp ended ▁\`tool write ▁decla
\`openclaw oken ▁0 path ▁handl -local ▁\`gateway. ▁retained ▁data wer thread ▁tab 000 ▁inv ▁Docker
](/plugins/ ▁var ▁checkout ▁keys ume ▁calls ubles user ▁Claude env ▁prom DK inking ▁side mits mory
▁migration operator. hoot Plugin ▁audio roubles roubleshoot ▁present ignal ▁Slack ▁down bject
ification beat ▁abo ──── ected artbeat wait etwork ade iew ▁observ Com tools/ date ▁multi abilities
▁core aired Card> ▁\`pnpm ▁Runtime Config ▁card ▁Chat atches ▁\`OPENCLAW_ aces ▁helper ▁repo ▁imm
▁publication /0/0 ▁expos Set ▁\`channel search atform of gress sed pendent ailscal ▁saved Al web
▁boundary ▁appe utable aries ▁Install 2. -h compat icon ▁writes </span><span> ▁SDK ▁</div> ▁continu
▁audit ▁Lo ▁durable ▁typ eds reate rome ▁automatic ▁against ventory -server 026 do cepts ▁person
loud ▁non- er, ale aration tric ▁stored achine -label ▁rather roubleshooting ▁tem ▁import ▁disabled
▁Telegram ▁auto Agent This ferent ▁No </span></div> ▁registr -up over -back
▁className="maturity-score ▁evidence ▁className="maturity-surface-metric ▁backup uses wo id> ▁parent
▁stable ▁health idden ~/ ptional ▁verify E_ ▁accepts \`; ▁login ▁overrides ailscale ▁leav ▁cons rc
ld ▁raw ▁unless pre ▁pack ency ▁icon ▁· ▁was ▁short En ingle upported ▁exclu -status chron ▁settings
ideo ▁dispatch ▁grant ▁compatibility ▁built ▁opt ▁rul pers acing ▁reload ▁<Card ▁Keep ▁shell ories
pass ▁OAuth ▁global On ases .s ▁capture atic ▁step ▁logs roval ▁manifest ▁agents ▁replies ▁index
▁dashboard ▁method fin udio Ur ins igh start image otstr ▁ans igible ▁replacement ocket ▁<span
▁</Card> ▁room ▁\`plugin ▁accepted Url ▁--json ▁copy dk ers. ▁SSH 0% ▁Res ▁callback ▁skip ▁6 eat yle
account ▁registry ▁preview ▁controls ▁what concepts Ref Id\` ▁[S icial ▁\`operator. awn ▁Each ▁path.
▁default. wise -l ▁ask ▁Full ▁Un ▁independent ▁different otstrap ▁archive ▁replay ▁br istant ▁view
rc/ 3. From ▁ClawHub ▁Default \`) teractive -specific ires ▁single ▁tre ▁rend ▁min ▁used
AccordionGroup> sel used ▁stale ▁resolved complet enabled ▁old ▁document ribution etch ▁K ource TS
kind ER es: ▁authority ▁prefix ▁Agent ging ▁sends ridge ▁car ▁--fix )\` workspace ▁i ▁IDs ▁string
](/tools/ ▁machine chronous ▁routing ▁Linux ered ▁session. ▁turns ▁secret ▁enabled: etwe "], etween
ampl ▁spe PC ▁cover ▁top ared ▁Session ▁inher witch pt- orage ▁docs Model string ▁directly ▁attempt
aps ▁num ▁events ▁automatically Socket reen chat vide ▁bind defaults 5. ▁get ▁decision ▁Plugin
▁skills ▁display ▁loopback ▁wr ner vert ▁Provider Policy ▁post ▁supports -host ived ▁claim
▁className="maturity-level ~/. ▁adapt ediate ▁Pre PT met codex ▁artifact ▁always ▁two ▁stand
▁resolve ▁true\` ▁generation ▁rev ental ▁compaction ▁previous /g ports ▁Secret velo ▁usage cope ▁Rec
▁count ▁\`agents. ▁\`{ ▁Code ▁reco 1. atest ▁paired ▁agent's self rem s** ▁most light ▁leaves
concepts/ ID ▁there icate ▁profiles dy ▁Gateway. ▁inbound ▁bro ▁alone src/ ▁per- cli rel ▁schedul
memory ilent ▁outside ▁Requ counts Ho \`: ▁security ▁approvals ▁preserve ▁background ▁object 55
▁trust ▁mention ▁installs grade reg ▁rele resol compatible Codex ▁shap lain ▁hosted ▁restr ▁abs
▁verified que inclu ▁above les ▁den version ▁share ▁publish ▁"m ▁Native ▁authentication ▁queue
-backed ▁Rep ached ▁unchanged. onom ▁widget col ▁suppl ▁operation ▁produ An ▁below ▁receive
▁activity ▁\`model ally ▁updates ▁inte ▁commit runtime loy ▁uns ▁caller ▁eligible sho ants ▁pick
▁onboarding ▁where ▁Tool ▁capabilities por -de ▁Mac ▁app-server ▁forward ▁proof ▁Chrome ▁replace
▁authenticated ▁isolated aring ▁Model inue perim ▁more ▁reposit ▁**src/ 78 tes ▁Ol akes ▁desktop ▁ph
▁red ient ▁look auto ▁changing ▁completed ▁reuse ▁installation ▁selects ▁omit ▁who Warning
▁published build -reference ▁href ▁choose perimental ▁href=" -d ving cce ▁section ▁sur ters ▁href="/
); eer ▁disable group tenance ▁icon=" emini ▁bridge ▁configure ▁surf ▁sender ified ▁heartbeat
Warning> tion nel ▁Other aging ▁CI ▁relay ▁unknown ▁inherit rup ▁arg ▁WebSocket 56 card ▁Qu
▁bootstrap ▁assistant ech Channel pha p>< ▁official ▁bran ▁immediate Do ▁exce rompt -session ries.
trusted ▁vari ▁These ▁policy. ={ mall force ested -to ell ▁fix ▁removes ▁resolves hether ParamField>
▁mut ▁PR ▁probe ▁launch <a cedence ors ▁exit stand ▁RPC ▁SecretRef onomy ned ▁subs ▁safe ▁helpers
▁cor log ▁Check ▁them. ▁guid ▁rejects ▁realtime ier chema ▁\`false ▁effective ▁download ▁advert ▁Im
▁sett ▁how ages. ▁artifacts ▁Windows ▁network iB ▁opens ▁unset ▁limits Lo ▁inject ▁\`openclaw.
▁\`allow arrow ▁\`de ▁appear ](/concepts/ -con </ParamField> ▁Aut ▁(or ▁intention ▁api ▁state. .com
sApp ▁\`tools. ▁storage *\` net now ▁remove RE IN itial ued oth ▁tag lash ▁plan ▁behavior.
▁container ▁prompts <ParamField ▁reachability Token ▁conc ▁dev ▁export ▁lane ▁whose manual ▁trig
ploy unnel axonomy ode: oll ▁recon ▁max ▁type=" ▁cancell ▁secrets attern ▁repository -pill
▁verification ▁className="maturity-level-pill <div ▁guard ▁hooks points ▁reconnect ▁attachment
▁restore ▁read-only ▁Existing _API_KEY\` ▁inventory ▁otherwise ▁dest ▁descri ipped -thread ▁video
▁whether ▁candidate; TO mon hared ▁nodes ▁silent -se ▁id: ▁resolution ▁last ▁tests ▁generated
▁maturity-level ▁\`channels. ▁style ▁agents: ▁12 uctured -w Sec stream ▁jobs ▁primary ME tings ▁lay
sidebar ]\` unk ▁est ferences ▁expose ▁invalid ▁Add ▁format Allow ▁2026 tocol -sco ruct 0%) ▁wrapp
▁Channel ps Title ▁Be ▁compact .md\` ▁either ▁await eeds pes ▁surv ▁fr ▁origin ▁After bug ▁reset
▁Explicit ▁summ ▁precedence CLI ▁sent utes ▁line before ▁counts ▁They ffort ▁embedded nowled To UI
ton ▁\`n ▁automation See ▁dra ▁accounts sidebarTitle sidebarTitle: vis cation plement ▁Google
▁diagnostics lean ipt ▁[M ▁model: ▁changed ▁named cated ▁actual minist ▁within fail alone ▁place
▁branch estion status ▁pair ▁mode, tension https:// roid ▁dead live arli lick row"> ▁built-in ST
▁pref ▁registration -compatible /t ervice ches ▁means s": ▁roll Max ▁small ▁}\` ▁rejected Tool
▁Anthropic ▁prot ▁Gener ▁waits ▁collect ▁maintenance Ad cp ction ▁Its mail duct ▁--fix\` ▁Per ▁extr
](/channel ▁tasks ▁reasoning -e max ▁detail ▁\`openai ▁summary ▁thinking ▁main-thread ike puter
▁targets ▁clients admin acement ▁webhook grad ▁lists -interactive ▁# come ▁channels: ▁Surface abling
▁internal ▁Talk ged ▁plugins: ▁omitted De arm ▁role ▁outbound ed\` ▁Man ▁mode: Install ▁finish
▁switch enar ▁tracing approval enario LM cher ▁requested ▁interactive itional ▁With :** ▁actions
▁facts ▁<Tab ▁</Tab ~/.openclaw/ ▁dr ▁OpenClaw. timeout ▁exposes ▁tempor ▁deploy 4. v1 ▁ack
---------------------------------------------------------------- ▁Val hes ▁Tailscale ▁dist ▁Mode
uman ▁routes -sdk ▁integr ▁narrow ily ▁Pl ▁disco ▁Local enu ▁models: ▁make ▁coverage HA ▁ids
▁verifies ▁available. ▁exists ▁itself ode\` /mixed ▁Runtime/mixed otal Session ▁defaults: ased ▁run.
▁identif ▁separately moke ▁continue ▁destin ▁level ▁generic ▁cloud erify ▁preparation anel
▁provider: comm /model ishes ▁stops ▁width gn profile ▁returned arlier ▁Des ▁QA ▁\`node ▁8 ident ▁Up
▁prepared oid ▁Ret ▁multiple ▁between /c ines rab :manual rabbox ▁mer s\`, igno ages, ▁lease ferred
▁spawn ▁extension ndroid ▁</Tab> ▁"s ▁decl -plugin-reference -plugin-reference:manual ▁state,
▁consum ▁matches ▁closed ▁instruct ▁receipt autom ▁default, ▁instead. ▁restrict ▁(0%) s_ ▁\`. ▁Cho
▁go ▁OpenClaw's ▁arr ▁policy, <Note> </Note> ▁like ▁-> ▁works ▁Read ▁errors ▁... .0.0 789 ▁bel
▁\`true ▁personal ▁Quick YY ▁Act artial izes ▁initial ML cer acp ▁idle ▁adds ▁readiness tree ▁rules
▁ded gine vered Message KEN Steps> ▁answer ▁registered ▁belong ▁std ▁Le area ](/cli ▁lock -readiness
▁inspection ▁asyn ▁model. dule update ▁Optional ▁interrup upl emo ▁filter Script ▁reported ▁disables
▁Matrix ▁signal ▁notification ▁maturity-readiness ▁To ▁Not -man TOKEN ply sour ▁file. ▁false\` 123
eting ▁-f ▁allowed ▁------------------------------------------------ ▁inline auth. ▁subscription
▁model, ▁runner ▁broad ▁igno su ▁Dist rary ▁blocks ▁(for ▁cron ▁advertis ▁ing ▁-------- Rec ▁owned
▁embedding ▁progress ▁WhatsApp ▁starting Chat setup -start shop ▁x ▁cost reaming ria ▁Gateway, ews
▁argument ▁debug ▁Distribution RO bed ▁"$ ▁streaming ▁reconc -scoped state ▁Me ▁approve ▁modes
▁creates sitive ▁rebuild ▁acknowled s" place icip ▁recent valu After that ▁size ▁structured ▁affect
▁lookup ▁chunk PU code ▁mem ▁Release ▁dependency ▁kind ▁guidance ](/channels/ e. ml ▁pus ▁AI ▁agent.
▁transcripts ▁specific ▁\`agents.defaults /s qa ▁\`\`\`json pnpm ▁\`exec OR tent ▁prevent id>\`
▁follows emon ▁config, Path ▁falls ▁handoff ▁links ▁clears ▁\`api ▁surfaces ▁SHA ▁track providers
▁admitted ▁receives ="true -al can ▁notes trans ▁30 aemon van meter /gpt- ▁panel check Id: ▁declared
▁pinned arac posal ▁maturity-s source ero Rout ▁upload ▁resto ▁three ▁stores DI message ▁mapp strong
▁contains ▁false, -token ▁temporary ▁width: od Se ▁}} process ▁query ▁per-agent lists ▁\`group
▁longer ▁Team ={{ ▁taxonomy ▁draft ▁aria ▁style={{ ▁work. ▁comment ▁meas ──────── ▁intentionally
▁trigger _TOKEN OD ▁/></span> ▁covers configuration </span></span><span -label"> -label"><span
▁className="maturity-surface-metric"><span -hidden </span></div><div ="true"><span
▁className="maturity-meter ▁maturity-score strong> ▁className="maturity-surface-metric-label">
▁className="maturity-score-label"><span ▁aria-hidden ▁/></span></span></div><div
▁className="maturity-meter" ▁aria-hidden="true"><span eral ▁gate ▁groups pr ▁we ▁map ▁superv
▁connected ▁latest ▁earlier urs ome ▁Or -review ▁deleg ▁filesystem ▁Troubleshooting ▁screen ert call
▁session, example ▁Start ▁header ▁Search ▁fetch Dis omes oke ▁hard pace ▁created ▁removed bes ▁\`P
▁Al ester patch enerate ▁leave
`
  .split(/\s+/)
  .filter(Boolean);
