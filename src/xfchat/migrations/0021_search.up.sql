-- Search (issue 11): one GIN index that answers words, stems, prefixes, substrings of
-- three characters or more, CJK text, punctuation and emoji, in core PostgreSQL alone (no
-- pg_trgm: the PyPI-packaged server has no contrib, and one code path gives the same
-- answers on every build). src/xfchat/domain/search_text.py is the Python twin of
-- xf_fold and says why each character class is what it is; db/queries/search.py reads
-- the index. No function here consults the locale: every server folds alike.

-- Non-ASCII text, folded: small letters for capitals (Latin, Greek, Cyrillic), no Latin
-- accents, a plain space for every Unicode space, joiner and emoji variation selector,
-- ASCII for full-width forms. Each group's map is applied only to text that has a
-- character of the group (translate costs the map's length per character).
CREATE FUNCTION xf_fold_wide(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    -- latin1
    IF t ~ '[\u0080-\u00FF]' THEN
        t := translate(t,
                U&'\0080\0081\0082\0083\0084\0085\0086\0087\0088\0089\008A\008B\008C\008D\008E\008F\0090\0091\0092\0093\0094\0095\0096\0097\0098\0099\009A\009B\009C\009D\009E\009F\00A0\00C0\00C1\00C2\00C3\00C4\00C5\00C6'
                || U&'\00C7\00C8\00C9\00CA\00CB\00CC\00CD\00CE\00CF\00D0\00D1\00D2\00D3\00D4\00D5\00D6\00D8\00D9\00DA\00DB\00DC\00DD\00DE\00E0\00E1\00E2\00E3\00E4\00E5\00E7\00E8\00E9\00EA\00EB\00EC\00ED\00EE\00EF\00F1\00F2'
                || U&'\00F3\00F4\00F5\00F6\00F9\00FA\00FB\00FC\00FD\00FF',
                U&'                                 aaaaaa\00E6'
                || U&'ceeeeiiii\00F0nooooo\00F8uuuuy\00FEaaaaaaceeeeiiiino'
                || U&'oooouuuuyy');
    END IF;
    -- latin_ext
    IF t ~ '[\u0100-\u024F]' THEN
        t := translate(t,
                U&'\0100\0101\0102\0103\0104\0105\0106\0107\0108\0109\010A\010B\010C\010D\010E\010F\0110\0112\0113\0114\0115\0116\0117\0118\0119\011A\011B\011C\011D\011E\011F\0120\0121\0122\0123\0124\0125\0126\0128\0129'
                || U&'\012A\012B\012C\012D\012E\012F\0132\0134\0135\0136\0137\0139\013A\013B\013C\013D\013E\013F\0141\0143\0144\0145\0146\0147\0148\014A\014C\014D\014E\014F\0150\0151\0152\0154\0155\0156\0157\0158\0159\015A'
                || U&'\015B\015C\015D\015E\015F\0160\0161\0162\0163\0164\0165\0166\0168\0169\016A\016B\016C\016D\016E\016F\0170\0171\0172\0173\0174\0175\0176\0177\0178\0179\017A\017B\017C\017D\017E\0181\0182\0184\0186\0187'
                || U&'\0189\018A\018B\018E\018F\0190\0191\0193\0194\0196\0197\0198\019C\019D\019F\01A0\01A1\01A2\01A4\01A6\01A7\01A9\01AC\01AE\01AF\01B0\01B1\01B2\01B3\01B5\01B7\01B8\01BC\01C4\01C5\01C7\01C8\01CA\01CB\01CD'
                || U&'\01CE\01CF\01D0\01D1\01D2\01D3\01D4\01D5\01D6\01D7\01D8\01D9\01DA\01DB\01DC\01DE\01DF\01E0\01E1\01E2\01E4\01E6\01E7\01E8\01E9\01EA\01EB\01EC\01ED\01EE\01F0\01F1\01F2\01F4\01F5\01F6\01F7\01F8\01F9\01FA'
                || U&'\01FB\01FC\01FE\0200\0201\0202\0203\0204\0205\0206\0207\0208\0209\020A\020B\020C\020D\020E\020F\0210\0211\0212\0213\0214\0215\0216\0217\0218\0219\021A\021B\021C\021E\021F\0220\0222\0224\0226\0227\0228'
                || U&'\0229\022A\022B\022C\022D\022E\022F\0230\0231\0232\0233\023A\023B\023D\023E\0241\0243\0244\0245\0246\0248\024A\024C\024E',
                U&'aaaaaaccccccccdd\0111eeeeeeeeeegggggggghh\0127ii'
                || U&'iiiiii\0133jjkkllllll\0140\0142nnnnnn\014Boooooo\0153rrrrrrs'
                || U&'ssssssstttt\0167uuuuuuuuuuuuwwyyyzzzzzz\0253\0183\0185\0254\0188'
                || U&'\0256\0257\018C\01DD\0259\025B\0192\0260\0263\0269\0268\0199\026F\0272\0275oo\01A3\01A5\0280\01A8\0283\01AD\0288uu\028A\028B\01B4\01B6\0292\01B9\01BD\01C6\01C6\01C9\01C9\01CC\01CCa'
                || U&'aiioouuuuuuuuuuaaaa\01E3\01E5ggkkoooo\01EFj\01F3\01F3gg\0195\01BFnna'
                || U&'a\01FD\01FFaaaaeeeeiiiioooorrrruuuusstt\021Dhh\019E\0223\0225aae'
                || U&'eooooooooyy\2C65\023C\019A\2C66\0242\0180\0289\028C\0247\0249\024B\024D\024F');
    END IF;
    -- greek_cyrillic
    IF t ~ '[\u0370-\u052F]' THEN
        t := translate(t,
                U&'\0370\0372\0376\037F\0386\0388\0389\038A\038C\038E\038F\0391\0392\0393\0394\0395\0396\0397\0398\0399\039A\039B\039C\039D\039E\039F\03A0\03A1\03A3\03A4\03A5\03A6\03A7\03A8\03A9\03AA\03AB\03CF\03D8\03DA'
                || U&'\03DC\03DE\03E0\03E2\03E4\03E6\03E8\03EA\03EC\03EE\03F4\03F7\03F9\03FA\03FD\03FE\03FF\0400\0401\0402\0403\0404\0405\0406\0407\0408\0409\040A\040B\040C\040D\040E\040F\0410\0411\0412\0413\0414\0415\0416'
                || U&'\0417\0418\0419\041A\041B\041C\041D\041E\041F\0420\0421\0422\0423\0424\0425\0426\0427\0428\0429\042A\042B\042C\042D\042E\042F\0460\0462\0464\0466\0468\046A\046C\046E\0470\0472\0474\0476\0478\047A\047C'
                || U&'\047E\0480\048A\048C\048E\0490\0492\0494\0496\0498\049A\049C\049E\04A0\04A2\04A4\04A6\04A8\04AA\04AC\04AE\04B0\04B2\04B4\04B6\04B8\04BA\04BC\04BE\04C0\04C1\04C3\04C5\04C7\04C9\04CB\04CD\04D0\04D2\04D4'
                || U&'\04D6\04D8\04DA\04DC\04DE\04E0\04E2\04E4\04E6\04E8\04EA\04EC\04EE\04F0\04F2\04F4\04F6\04F8\04FA\04FC\04FE\0500\0502\0504\0506\0508\050A\050C\050E\0510\0512\0514\0516\0518\051A\051C\051E\0520\0522\0524'
                || U&'\0526\0528\052A\052C\052E',
                U&'\0371\0373\0377\03F3\03AC\03AD\03AE\03AF\03CC\03CD\03CE\03B1\03B2\03B3\03B4\03B5\03B6\03B7\03B8\03B9\03BA\03BB\03BC\03BD\03BE\03BF\03C0\03C1\03C3\03C4\03C5\03C6\03C7\03C8\03C9\03CA\03CB\03D7\03D9\03DB'
                || U&'\03DD\03DF\03E1\03E3\03E5\03E7\03E9\03EB\03ED\03EF\03B8\03F8\03F2\03FB\037B\037C\037D\0450\0451\0452\0453\0454\0455\0456\0457\0458\0459\045A\045B\045C\045D\045E\045F\0430\0431\0432\0433\0434\0435\0436'
                || U&'\0437\0438\0439\043A\043B\043C\043D\043E\043F\0440\0441\0442\0443\0444\0445\0446\0447\0448\0449\044A\044B\044C\044D\044E\044F\0461\0463\0465\0467\0469\046B\046D\046F\0471\0473\0475\0477\0479\047B\047D'
                || U&'\047F\0481\048B\048D\048F\0491\0493\0495\0497\0499\049B\049D\049F\04A1\04A3\04A5\04A7\04A9\04AB\04AD\04AF\04B1\04B3\04B5\04B7\04B9\04BB\04BD\04BF\04CF\04C2\04C4\04C6\04C8\04CA\04CC\04CE\04D1\04D3\04D5'
                || U&'\04D7\04D9\04DB\04DD\04DF\04E1\04E3\04E5\04E7\04E9\04EB\04ED\04EF\04F1\04F3\04F5\04F7\04F9\04FB\04FD\04FF\0501\0503\0505\0507\0509\050B\050D\050F\0511\0513\0515\0517\0519\051B\051D\051F\0521\0523\0525'
                || U&'\0527\0529\052B\052D\052F');
    END IF;
    -- latin_additional
    IF t ~ '[\u1E00-\u1EFF]' THEN
        t := translate(t,
                U&'\1E00\1E01\1E02\1E03\1E04\1E05\1E06\1E07\1E08\1E09\1E0A\1E0B\1E0C\1E0D\1E0E\1E0F\1E10\1E11\1E12\1E13\1E14\1E15\1E16\1E17\1E18\1E19\1E1A\1E1B\1E1C\1E1D\1E1E\1E1F\1E20\1E21\1E22\1E23\1E24\1E25\1E26\1E27'
                || U&'\1E28\1E29\1E2A\1E2B\1E2C\1E2D\1E2E\1E2F\1E30\1E31\1E32\1E33\1E34\1E35\1E36\1E37\1E38\1E39\1E3A\1E3B\1E3C\1E3D\1E3E\1E3F\1E40\1E41\1E42\1E43\1E44\1E45\1E46\1E47\1E48\1E49\1E4A\1E4B\1E4C\1E4D\1E4E\1E4F'
                || U&'\1E50\1E51\1E52\1E53\1E54\1E55\1E56\1E57\1E58\1E59\1E5A\1E5B\1E5C\1E5D\1E5E\1E5F\1E60\1E61\1E62\1E63\1E64\1E65\1E66\1E67\1E68\1E69\1E6A\1E6B\1E6C\1E6D\1E6E\1E6F\1E70\1E71\1E72\1E73\1E74\1E75\1E76\1E77'
                || U&'\1E78\1E79\1E7A\1E7B\1E7C\1E7D\1E7E\1E7F\1E80\1E81\1E82\1E83\1E84\1E85\1E86\1E87\1E88\1E89\1E8A\1E8B\1E8C\1E8D\1E8E\1E8F\1E90\1E91\1E92\1E93\1E94\1E95\1E96\1E97\1E98\1E99\1E9E\1EA0\1EA1\1EA2\1EA3\1EA4'
                || U&'\1EA5\1EA6\1EA7\1EA8\1EA9\1EAA\1EAB\1EAC\1EAD\1EAE\1EAF\1EB0\1EB1\1EB2\1EB3\1EB4\1EB5\1EB6\1EB7\1EB8\1EB9\1EBA\1EBB\1EBC\1EBD\1EBE\1EBF\1EC0\1EC1\1EC2\1EC3\1EC4\1EC5\1EC6\1EC7\1EC8\1EC9\1ECA\1ECB\1ECC'
                || U&'\1ECD\1ECE\1ECF\1ED0\1ED1\1ED2\1ED3\1ED4\1ED5\1ED6\1ED7\1ED8\1ED9\1EDA\1EDB\1EDC\1EDD\1EDE\1EDF\1EE0\1EE1\1EE2\1EE3\1EE4\1EE5\1EE6\1EE7\1EE8\1EE9\1EEA\1EEB\1EEC\1EED\1EEE\1EEF\1EF0\1EF1\1EF2\1EF3\1EF4'
                || U&'\1EF5\1EF6\1EF7\1EF8\1EF9\1EFA\1EFC\1EFE',
                U&'aabbbbbbccddddddddddeeeeeeeeeeffgghhhhhh'
                || U&'hhhhiiiikkkkkkllllllllmmmmmmnnnnnnnnoooo'
                || U&'oooopppprrrrrrrrssssssssssttttttttuuuuuu'
                || U&'uuuuvvvvwwwwwwwwwwxxxxyyzzzzzzhtwy\00DFaaaaa'
                || U&'aaaaaaaaaaaaaaaaaaaeeeeeeeeeeeeeeeeiiiio'
                || U&'ooooooooooooooooooooooouuuuuuuuuuuuuuyyy'
                || U&'yyyyy\1EFB\1EFD\1EFF');
    END IF;
    -- spaces
    IF t ~ '[\u1680\u2000-\u206F\u3000\uFE0E-\uFE0F\uFEFF]' THEN
        t := translate(t,
                U&'\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\200C\200D\200E\2028\2029\202F\205F\2060\3000\FE0E\FE0F\FEFF',
                U&'                         ');
    END IF;
    -- fullwidth
    IF t ~ '[\uFF01-\uFF5E]' THEN
        t := translate(t,
                U&'\FF01\FF02\FF03\FF04\FF05\FF06\FF07\FF08\FF09\FF0A\FF0B\FF0C\FF0D\FF0E\FF0F\FF10\FF11\FF12\FF13\FF14\FF15\FF16\FF17\FF18\FF19\FF1A\FF1B\FF1C\FF1D\FF1E\FF1F\FF20\FF21\FF22\FF23\FF24\FF25\FF26\FF27\FF28'
                || U&'\FF29\FF2A\FF2B\FF2C\FF2D\FF2E\FF2F\FF30\FF31\FF32\FF33\FF34\FF35\FF36\FF37\FF38\FF39\FF3A\FF3B\FF3C\FF3D\FF3E\FF3F\FF40\FF41\FF42\FF43\FF44\FF45\FF46\FF47\FF48\FF49\FF4A\FF4B\FF4C\FF4D\FF4E\FF4F\FF50'
                || U&'\FF51\FF52\FF53\FF54\FF55\FF56\FF57\FF58\FF59\FF5A\FF5B\FF5C\FF5D\FF5E',
                U&'!"#$%&\0027()*+,-./0123456789:;<=>?@abcdefgh'
                || U&'ijklmnopqrstuvwxyz[\005C]^_`abcdefghijklmnop'
                || U&'qrstuvwxyz{|}~');
    END IF;
    RETURN t;
END
$$;

-- The text as search compares it: ASCII capitals to small letters, then xf_fold_wide for
-- the rest. One character to one, so positions survive (snippets rely on it).
CREATE FUNCTION xf_fold(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN octet_length(t) = length(t) THEN lower(t COLLATE "C")
                ELSE xf_fold_wide(lower(t COLLATE "C")) END
$$;

-- The substring grams of folded text: every three characters of each token (tokens are
-- separated by spaces and ASCII controls); each one and two characters of every run of
-- CJK, which is written without spaces; each emoji or symbol by itself. A term's grams
-- are among the grams of any text that contains it: that is how the index finds
-- substrings. (Duplicates are left in: array_to_tsvector removes them.)
CREATE FUNCTION xf_grams(f text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    grams text[];
BEGIN
    grams := ARRAY(
        SELECT substr(tok, i, 3)
        FROM regexp_split_to_table(f, '[\x01-\x20\x7F]+') AS tok,
             generate_series(1, length(tok) - 2) AS i);
    IF octet_length(f) <> length(f) THEN
        grams := grams || ARRAY(
            SELECT substr(r.m[1], i, w.n)
            FROM regexp_matches(f, '([\u3040-\u30FF\u3131-\u318E\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F]+)', 'g') AS r(m),
                 (VALUES (1), (2)) AS w(n),
                 generate_series(1, length(r.m[1]) - w.n + 1) AS i)
        || ARRAY(SELECT s.m[1] FROM regexp_matches(f, '([\u00A9\u00AE\u203C\u2049\u2122\u2139\u2190-\u21FF\u2300-\u23FF\u2460-\u24FF\u25A0-\u27BF\u2900-\u297F\u2B00-\u2BFF\u3030\u303D\u3297\u3299\U0001F000-\U0001FAFF])', 'g') AS s(m));
    END IF;
    RETURN grams;
END
$$;

-- What a message is indexed by (positions stripped: ranking re-parses the few rows it
-- ranks): its words stemmed in the message's language and as written, its grams marked
-- with a leading space (no parser makes a lexeme with a space in it), and the marker
-- ' has:link' when it holds a link.
CREATE FUNCTION xf_search_vector(cfg regconfig, content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT strip(to_tsvector(cfg, f) || to_tsvector('simple'::regconfig, f))
           || array_to_tsvector(
                  ARRAY(SELECT ' ' || g FROM unnest(xf_grams(f)) AS g)
                  || CASE WHEN f ~ '(https?|ftp)://[^\x01-\x20\x7F]|www\.[^\x01-\x20\x7F]'
                          THEN ARRAY[' has:link'] ELSE '{}'::text[] END)
    FROM xf_fold(content) AS f
$$;

-- The language a server's messages are stemmed in: any text search configuration the
-- database has ('simple' stems nothing). A message keeps the one it was written under
-- until the server's setting changes (domain/search.py re-indexes the server's messages).
ALTER TABLE servers ADD COLUMN search_language regconfig NOT NULL DEFAULT 'english';

DROP INDEX messages_search_idx;
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english';
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (xf_search_vector(search_config, content)) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search);
