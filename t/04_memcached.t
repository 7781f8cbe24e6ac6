# memcached in front of the registry (SPEC §1, §6.1, §6.7, §6.8): garbage,
# truncated, foreign or stale values are a miss, never a wrong answer;
# absent keys are cached but a PUT makes them visible at once; with
# memcached down everything works from the database, and when it comes
# back no stale entry is served and no restart is needed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key svc mc_key mc_raw mc_set_raw mc_get wait_for
              tmp_files node_url node_counter);
use Time::HiRes ();

# Always leave memcached running for the next test file.
END { eval { svc('start-mc') } }

sub new_key { '/files/' . unique_key($_[0] || 'mc') . '.txt' }

# GET KEY and check it answers BODY at VERSION (with ETAG if given).
sub serves {
    my ($key, $body, $ver, $etag, $what) = @_;
    my $r = req(GET => $key);
    my $ok = is $r->code, 200, "$what: GET is 200";
    $ok &= is $r->content, $body, "$what: GET returns the right bytes";
    $ok &= is $r->header('X-ClusterStorage-Version'), $ver,
        "$what: GET returns the right version";
    $ok &= is $r->header('ETag'), $etag, "$what: and the right ETag"
        if defined $etag;
    return $ok;
}

# ------------------------------------------------------------ garbage
my $key  = new_key('mcg');
my $body = "the real bytes\n" x 20;
my $r = req(PUT => $key, $body);
is $r->code, 201, 'fixture stored' or die "cannot store the fixture\n";
my $ver  = $r->header('X-ClusterStorage-Version');
my $etag = $r->header('ETag');
my $mck  = mc_key($key);

is req(GET => $key)->code, 200, 'GET of the fixture';
ok wait_for(5, sub { defined mc_get($mck) }),
    'a GET leaves a registry entry in memcached'
    or die "the module does not use memcached; nothing below would test it\n";
my $real = mc_get($mck);

# A second key, for a value that is authentic but belongs to another key.
my $other = new_key('mcg-other');
is req(PUT => $other, "other bytes\n")->code, 201, '(second key stored)';
is req(GET => $other)->code, 200, '(second key read)';
ok wait_for(5, sub { defined mc_get(mc_key($other)) }), '(second key cached)';
my $other_val = mc_get(mc_key($other));

# The real value with its version number raised by one (MAC unchanged).
(my $bumped = $real) =~ s/\b\Q$ver\E\b/$ver + 1/e;
# The real value with one character of its tail (the MAC) flipped.
my $flipped = $real;
substr($flipped, -1, 1) = substr($flipped, -1, 1) eq '0' ? '1' : '0';

my @garbage = (
    [ 'plain garbage'            => 'hello, I am not a registry entry' ],
    [ 'binary garbage'           => join('', map { chr(($_ * 37) % 256) } 1 .. 120) ],
    [ 'a single byte'            => 'x' ],
    [ 'a truncated copy'         => substr($real, 0, length($real) - 10) ],
    [ 'half of the real value'   => substr($real, 0, int(length($real) / 2)) ],
    [ 'the real value plus junk' => $real . ' 1' ],
    [ 'another version, old MAC' => $bumped ],
    [ 'one MAC digit changed'    => $flipped ],
    [ "another key's value"      => $other_val ],
    [ 'a huge value'             => 'CS1 ' . ('9' x 5000) ],
);
isnt $bumped, $real, '(the version could be changed in the cached value)';
for my $g (@garbage) {
    my ($what, $val) = @$g;
    like mc_set_raw($mck, $val), qr/^STORED/, "($what planted in memcached)";
    my $mc_hits = node_counter(node_url(), 'mc_hits');
    serves($key, $body, $ver, $etag, "with $what in memcached");
    # Refused as a registry entry, not taken and then outvoted by the
    # database: memcached did not count as having answered.
    is node_counter(node_url(), 'mc_hits'), $mc_hits,
        "$what was not taken for a registry entry";
    # And again: whatever the module did with the entry, it still answers
    # right.
    serves($key, $body, $ver, $etag, "after $what, a second GET");
}
# HEAD and Range too, with garbage in place.
mc_set_raw($mck, $bumped);
$r = req(GET => $key, undef, Range => 'bytes=0-3');
is $r->code, 206, 'with a forged entry, a Range GET is still 206';
is $r->content, substr($body, 0, 4), 'with the right bytes';

# Garbage for an absent key: still 404.
{
    my $absent = new_key('mcg-absent');
    mc_set_raw(mc_key($absent), $real);      # authentic, but for $key
    is req(GET => $absent)->code, 404,
        "an absent key with another key's entry in memcached is 404";
    mc_set_raw(mc_key($absent), 'garbage');
    is req(GET => $absent)->code, 404, 'an absent key with garbage is 404';
}

# An authentic but old entry (a reader's late cache fill): the current
# version is served, never the older one.
{
    my $k = new_key('mc-stale');
    is req(PUT => $k, "version one\n")->code, 201, '(v1 stored)';
    is req(GET => $k)->code, 200, '(v1 read)';
    ok wait_for(5, sub { defined mc_get(mc_key($k)) }), '(v1 cached)';
    my $v1val = mc_get(mc_key($k));
    $r = req(PUT => $k, "version two\n");
    is $r->code, 204, '(v2 stored)';
    my $v2 = $r->header('X-ClusterStorage-Version');
    like mc_set_raw(mc_key($k), $v1val), qr/^STORED/, '(old v1 entry put back)';
    serves($k, "version two\n", $v2, undef, 'with an old authentic entry in memcached');

    # Same after a DELETE: the old entry must not resurrect the key.
    is req(DELETE => $k)->code, 204, '(deleted)';
    mc_set_raw(mc_key($k), $v1val);
    is req(GET => $k)->code, 404,
        'after DELETE, an old authentic entry in memcached does not bring it back';
}

# ------------------------------------------------------------ negative cache
{
    my $k = new_key('mc-neg');
    is req(GET => $k)->code, 404, 'GET of an absent key is 404';
    ok wait_for(5, sub { defined mc_get(mc_key($k)) }),
        'the 404 leaves a (negative) entry in memcached';
    $r = req(PUT => $k, "now here\n");
    is $r->code, 201, 'a PUT after the cached 404 is 201';
    $r = req(GET => $k);
    is $r->code, 200, 'and the key is visible at once';
    is $r->content, "now here\n", 'with its bytes';
    is req(DELETE => $k)->code, 204, 'DELETE is 204';
    is req(GET => $k)->code, 404, 'and the key is gone at once';
}

# ------------------------------------------------------------ memcached down
{
    # A key cached before memcached goes away.
    my $k = new_key('mc-down');
    $r = req(PUT => $k, "before the outage\n");
    is $r->code, 201, '(stored before the outage)';
    my $v1 = $r->header('X-ClusterStorage-Version');
    is req(GET => $k)->code, 200, '(read before the outage)';
    ok wait_for(5, sub { defined mc_get(mc_key($k)) }), '(cached before the outage)';

    svc('stop-mc');
    ok !defined mc_raw("version\r\n"), '(memcached is down)';

    my $t0 = Time::HiRes::time();
    serves($k, "before the outage\n", $v1, undef, 'memcached down');
    is req(GET => new_key('mc-down-absent'))->code, 404,
        'memcached down: GET of an absent key is 404';

    my $n = new_key('mc-down-new');
    is req(PUT => $n, "written during the outage\n")->code, 201,
        'memcached down: PUT of a new key is 201';
    is req(GET => $n)->content, "written during the outage\n",
        'memcached down: GET serves it';
    $r = req(PUT => $n, "replaced during the outage\n");
    is $r->code, 204, 'memcached down: PUT over it is 204';
    my $nv = $r->header('X-ClusterStorage-Version');
    serves($n, "replaced during the outage\n", $nv, undef, 'memcached down, replaced');
    is req(DELETE => $n)->code, 204, 'memcached down: DELETE is 204';
    is req(GET => $n)->code, 404, 'memcached down: GET after DELETE is 404';

    # The cached key gets a new version while memcached cannot be told.
    $r = req(PUT => $k, "during the outage\n");
    is $r->code, 204, 'memcached down: PUT v2 of the cached key is 204';
    my $v2 = $r->header('X-ClusterStorage-Version');
    serves($k, "during the outage\n", $v2, undef, 'memcached down, v2');
    ok Time::HiRes::time() - $t0 < 20,
        'memcached down: the requests above did not hang';

    svc('start-mc');
    ok defined mc_raw("version\r\n"), '(memcached is back, empty)';
    my $errlog = Apache::Test::vars('serverroot') . '/logs/error_log';
    my $logged = -s $errlog;
    serves($k, "during the outage\n", $v2, undef, 'memcached back');
    # A writer's first set after the restart lands (its pooled connection
    # from before the restart fails once; it asks again at once).
    my $first = new_key('mc-first');
    is req(PUT => $first, "first after the restart\n")->code, 201,
        'memcached back: the first PUT of a new key is 201';
    ok defined mc_get(mc_key($first)),
        'memcached back: and its entry is in memcached when the PUT is answered';
    my $since = do { open my $fh, '<', $errlog or die $!; seek $fh, $logged, 0;
                     local $/; <$fh> // '' };
    unlike $since, qr/CS111/, 'memcached back: no failed memcached write (CS111)';
    is req(GET => $n)->code, 404, 'memcached back: the deleted key stays deleted';

    # The module uses memcached again, without a restart.
    # (A node answers repeated GETs from its own registry cache, so each
    # try writes a fresh key: the writer sets memcached after its commit.)
    my $again;
    ok wait_for(30, sub {
            $again = new_key('mc-again');
            req(PUT => $again, "after\n")->code == 201
                && defined mc_get(mc_key($again))
        }), 'memcached back: the module fills it again without a restart';
    serves($again, "after\n", req(GET => $again)->header('X-ClusterStorage-Version'),
           undef, 'memcached back, new key');
}

is_deeply [tmp_files()], [], 'no temp file stays behind';

done_testing;
