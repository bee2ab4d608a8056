// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Settlement, IERC20} from "./Settlement.sol";

/// @title asyncdex settlement contract, committee mode
/// @notice The settlement contract of a venue sequenced by a BFT committee: a batch moves the
///         state root only with a quorum certificate of the current members' signatures,
///         members bond collateral in the venue's token, and provable equivocation costs a
///         member its bond and its seat.
/// @dev Invariants (on top of Settlement's):
///      - A batch is accepted only with signatures of at least quorum(a) = a - floor((a-1)/3)
///        distinct current members over its EIP-712 digest, a being the members still seated;
///        a certificate is `bitmap (32 bytes) || sig_i (65 bytes each)` with bit i of the
///        bitmap set for member index i and the signatures in increasing index order, so each
///        member counts once. A bit naming an empty (slashed) slot is refused.
///      - Every signature has one encoding (v in {27, 28}, s in the lower half order): a
///        malleated twin is refused, never counted.
///      - Every current member holds a bond >= minBond; no batch or epoch change is accepted
///        until every genesis member has bonded.
///      - The member set changes only by an epoch change certified by a quorum of the current
///        set (epoch numbers consecutive), or by slashing, which empties the member's slot at
///        once. Indexes never shift within an epoch: a certificate the others signed by index
///        before a slash still names the same members after it, as do the consensus
///        committee's own indexes; the next epoch change replaces the whole set.
///      - A member's bond stays slashable until it is withdrawn: leaving the set starts an
///        unbonding period (block timestamp), after which the bond can be withdrawn.
///      - Bonds never mix with user collateral: `availableFunds` counts deposits only; the
///        slashed share that is not the reporter's becomes a deposit to the insurance account
///        (an ordinary L1 message the engine credits), so `totalPaid <= totalDeposited` holds.
contract CommitteeSettlement is Settlement {
    // ---------------------------------------------------------------- types and constants

    bytes32 public constant EPOCH_TYPEHASH = keccak256("Epoch(uint256 epoch,address[] members)");
    /// @dev The signer bitmap is one word.
    uint256 public constant MAX_MEMBERS = 256;
    uint256 public constant BPS = 10_000;

    enum Status {
        None, // never bonded, or bond withdrawn
        Bonded, // bond posted, not in the current set
        Active, // in the current set
        Unbonding, // left the set; bond withdrawable after unbondingEnds, slashable until then
        Slashed // removed for equivocation; can never rejoin with this address
    }

    struct Stake {
        uint128 bond;
        uint64 unbondingEnds;
        Status status;
    }

    /// @notice The fields of a batch header, as in commitBatch (evidence of equivocation).
    struct BatchHeader {
        uint256 batchNumber;
        bytes32 prevStateRoot;
        bytes32 newStateRoot;
        bytes32 withdrawalsRoot;
        uint256 l1MessagesConsumed;
        bytes32 batchDataHash;
    }

    // ---------------------------------------------------------------- configuration

    uint256 public immutable minBond;
    /// @notice Seconds between leaving the set and withdrawing the bond.
    uint256 public immutable unbondingPeriod;
    /// @notice Share of a slashed bond paid to whoever submitted the evidence, in basis points.
    uint256 public immutable reporterShareBps;
    /// @notice Engine account credited (by a deposit L1 message) with the rest of a slashed bond.
    address public immutable insuranceAccount;
    /// @notice The consensus committee's signing domain (asyncdex.consensus Committee.domain):
    ///         votes are signed over keccak256(msgpack([domain, "vote", view, blockHash])).
    bytes public consensusDomain;

    // ---------------------------------------------------------------- state

    /// @dev The current set's size, in slots (emptied ones included) and seated members, in
    ///      one word: a certificate check reads both with one storage load.
    struct Seats {
        uint128 slots;
        uint128 active;
    }

    /// @dev Member by index; entries at or past `_seats.slots` are left from a larger earlier
    ///      set and never read.
    mapping(uint256 => address) private _memberAt;
    Seats private _seats;
    uint256 public epoch;
    /// @notice Genesis members that have not bonded yet; batches wait for 0.
    uint256 public genesisUnbonded;
    mapping(address => Stake) public stakes;
    uint256 public totalBonded;

    // ---------------------------------------------------------------- events

    event Bonded(address indexed member, uint256 amount, uint256 bond);
    event EpochChanged(uint256 indexed epoch, address[] members);
    event UnbondingStarted(address indexed member, uint256 unbondingEnds);
    event BondWithdrawn(address indexed member, uint256 amount);
    event MemberSlashed(
        address indexed member,
        address indexed reporter,
        uint256 bond,
        uint256 reporterReward,
        uint256 insuranceDeposit
    );

    // ---------------------------------------------------------------- errors

    error InvalidCommittee();
    error InvalidConfiguration();
    error CommitteeNotBonded(uint256 genesisMembersWithoutBond);
    error MalformedCertificate(uint256 length);
    error SignerNotMember(uint256 index, uint256 memberCount);
    error EmptySlot(uint256 index);
    error MalformedSignature(uint256 index);
    error DuplicateSigner(uint256 index, address signer);
    error WrongSigner(uint256 index, address expected, address recovered);
    error TooFewSignatures(uint256 signatures, uint256 quorum);
    error UnexpectedEpoch(uint256 expected, uint256 got);
    error DuplicateMember(address member);
    error NotBonded(address member);
    error BondTooSmall(uint256 bond, uint256 minimum);
    error BondUnavailable(address member, Status status);
    error StillActive(address member);
    error UnbondingNotOver(address member, uint256 unbondingEnds);
    error NotEquivocation();
    error EvidenceSignatureInvalid(address member);
    error NotSlashable(address member, Status status);

    // ---------------------------------------------------------------- construction

    /// @param genesisMembers the epoch-0 committee in index order; each must bond() at least
    ///        minBond before the first batch.
    constructor(
        IERC20 token_,
        uint256 finalityBlocks_,
        uint256 forcedDeadlineBlocks_,
        bytes32 genesisStateRoot,
        address[] memory genesisMembers,
        uint256 minBond_,
        uint256 unbondingPeriod_,
        uint256 reporterShareBps_,
        address insuranceAccount_,
        bytes memory consensusDomain_
    )
        // no single key signs batches: the sequencer slot names the contract itself
        Settlement(token_, address(this), finalityBlocks_, forcedDeadlineBlocks_, genesisStateRoot)
    {
        uint256 n = genesisMembers.length;
        if (n == 0 || n > MAX_MEMBERS) revert InvalidCommittee();
        if (minBond_ == 0 || minBond_ > type(uint128).max || reporterShareBps_ > BPS) {
            revert InvalidConfiguration();
        }
        if (insuranceAccount_ == address(0)) revert ZeroAddress();
        if (consensusDomain_.length > 255) revert InvalidConfiguration();
        for (uint256 i = 0; i < n; ++i) {
            address member = genesisMembers[i];
            if (member == address(0)) revert ZeroAddress();
            if (stakes[member].status != Status.None) revert DuplicateMember(member);
            stakes[member].status = Status.Active;
            _memberAt[i] = member;
        }
        minBond = minBond_;
        unbondingPeriod = unbondingPeriod_;
        reporterShareBps = reporterShareBps_;
        insuranceAccount = insuranceAccount_;
        consensusDomain = consensusDomain_;
        genesisUnbonded = n;
        _seats = Seats(uint128(n), uint128(n));
        emit EpochChanged(0, genesisMembers);
    }

    // ---------------------------------------------------------------- committee views

    /// @notice The current set in index order; a slashed member's slot reads address(0).
    function members() public view returns (address[] memory current) {
        uint256 n = _seats.slots;
        current = new address[](n);
        for (uint256 i = 0; i < n; ++i) current[i] = _memberAt[i];
    }

    /// @notice Slots of the current set, emptied ones included (certificate bits range over
    ///         them); activeMemberCount counts the seated members.
    function memberCount() external view returns (uint256) {
        return _seats.slots;
    }

    /// @notice Members of the current set whose slot is not emptied by slashing.
    function activeMemberCount() external view returns (uint256) {
        return _seats.active;
    }

    /// @notice Signatures a certificate needs from the seated members: a - floor((a-1)/3).
    function quorum() public view returns (uint256) {
        return _quorumOf(_seats.active);
    }

    /// @notice The EIP-712 digest the current members sign to install `members_` as epoch
    ///         `newEpoch` (see `epoch_digest` in asyncdex/settlement/certificate.py).
    function epochDigest(uint256 newEpoch, address[] calldata members_)
        public
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(EPOCH_TYPEHASH, newEpoch, keccak256(abi.encodePacked(members_)))
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice The digest a member signs to vote for `blockHash` in `view`: keccak256 of the
    ///         msgpack array [consensusDomain, "vote", view, blockHash], exactly
    ///         asyncdex.consensus.messages.vote_digest.
    function voteDigest(uint64 view_, bytes32 blockHash) public view returns (bytes32) {
        return _consensusDigest(hex"a4766f7465", view_, blockHash);
    }

    /// @notice The digest a leader signs to propose `blockHash` in `view`
    ///         (asyncdex.consensus.messages.proposal_digest: the kind is "proposal").
    function proposalDigest(uint64 view_, bytes32 blockHash) public view returns (bytes32) {
        return _consensusDigest(hex"a870726f706f73616c", view_, blockHash);
    }

    /// @notice Reverts with the specific reason unless `certificate` carries a quorum of
    ///         current members' signatures over `digest`.
    function verifyCertificate(bytes32 digest, bytes calldata certificate) external view {
        _verifyCertificate(digest, certificate);
    }

    // ---------------------------------------------------------------- batches

    function _authorizeBatch(bytes32 digest, bytes calldata certificate)
        internal
        view
        override
    {
        uint256 missing = genesisUnbonded;
        if (missing != 0) revert CommitteeNotBonded(missing);
        _verifyCertificate(digest, certificate);
    }

    // ---------------------------------------------------------------- stake

    /// @notice Add `amount` to the caller's bond (pulls the venue token; approve first). The
    ///         resulting bond must reach minBond. A genesis member's first bond activates it.
    function bond(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Stake storage stake = stakes[msg.sender];
        Status status = stake.status;
        if (status == Status.Unbonding || status == Status.Slashed) {
            revert BondUnavailable(msg.sender, status);
        }
        uint256 previous = stake.bond;
        uint256 total = previous + amount;
        if (total < minBond) revert BondTooSmall(total, minBond);
        if (total > type(uint128).max) revert InvalidConfiguration();
        stake.bond = uint128(total);
        if (status == Status.None) stake.status = Status.Bonded;
        if (status == Status.Active && previous == 0) --genesisUnbonded;
        totalBonded += amount;
        emit Bonded(msg.sender, amount, total);
        _safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Install epoch `newEpoch` with `newMembers` (index order), certified by a quorum
    ///         of the current set over epochDigest. New members must already be bonded with at
    ///         least minBond; current members left out start unbonding.
    function changeEpoch(
        uint256 newEpoch,
        address[] calldata newMembers,
        bytes calldata certificate
    ) external {
        if (frozen) revert ContractFrozen();
        uint256 missing = genesisUnbonded;
        if (missing != 0) revert CommitteeNotBonded(missing);
        if (newEpoch != epoch + 1) revert UnexpectedEpoch(epoch + 1, newEpoch);
        uint256 n = newMembers.length;
        if (n == 0 || n > MAX_MEMBERS) revert InvalidCommittee();
        _verifyCertificate(epochDigest(newEpoch, newMembers), certificate);

        // three passes: demote the old set, promote the new one (catching duplicates and
        // unbonded members), then send whoever is still demoted into unbonding
        address[] memory old = members();
        // an emptied slot's member is Slashed already and stays so
        for (uint256 i = 0; i < old.length; ++i) {
            if (old[i] != address(0)) stakes[old[i]].status = Status.Bonded;
        }
        for (uint256 i = 0; i < n; ++i) {
            address member = newMembers[i];
            Stake storage stake = stakes[member];
            if (stake.status == Status.Active) revert DuplicateMember(member);
            if (stake.status != Status.Bonded) revert NotBonded(member);
            if (stake.bond < minBond) revert BondTooSmall(stake.bond, minBond);
            stake.status = Status.Active;
            _memberAt[i] = member;
        }
        uint64 ends = uint64(block.timestamp + unbondingPeriod);
        for (uint256 i = 0; i < old.length; ++i) {
            if (old[i] == address(0)) continue;
            Stake storage stake = stakes[old[i]];
            if (stake.status == Status.Bonded) {
                stake.status = Status.Unbonding;
                stake.unbondingEnds = ends;
                emit UnbondingStarted(old[i], ends);
            }
        }
        _seats = Seats(uint128(n), uint128(n));
        epoch = newEpoch;
        emit EpochChanged(newEpoch, newMembers);
    }

    /// @notice Start the unbonding period of a bond that is not in the current set (a
    ///         candidate that was never installed). Members leave through an epoch change.
    function unbond() external {
        Stake storage stake = stakes[msg.sender];
        if (stake.status == Status.Active) revert StillActive(msg.sender);
        if (stake.status != Status.Bonded) revert NotBonded(msg.sender);
        uint64 ends = uint64(block.timestamp + unbondingPeriod);
        stake.status = Status.Unbonding;
        stake.unbondingEnds = ends;
        emit UnbondingStarted(msg.sender, ends);
    }

    /// @notice Return the caller's bond once its unbonding period is over.
    function withdrawBond() external {
        Stake storage stake = stakes[msg.sender];
        if (stake.status != Status.Unbonding) revert BondUnavailable(msg.sender, stake.status);
        if (block.timestamp < stake.unbondingEnds) {
            revert UnbondingNotOver(msg.sender, stake.unbondingEnds);
        }
        uint256 amount = stake.bond;
        stake.bond = 0;
        stake.unbondingEnds = 0;
        stake.status = Status.None;
        totalBonded -= amount;
        emit BondWithdrawn(msg.sender, amount);
        _safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- slashing

    /// @notice Evidence that `member` signed two different batch headers for one batch number.
    ///         Anyone may submit; the caller receives the reporter's share.
    function slashBatchEquivocation(
        address member,
        BatchHeader calldata a,
        bytes calldata signatureA,
        BatchHeader calldata b,
        bytes calldata signatureB
    ) external {
        if (a.batchNumber != b.batchNumber) revert NotEquivocation();
        bytes32 digestA = _headerDigest(a);
        bytes32 digestB = _headerDigest(b);
        if (digestA == digestB) revert NotEquivocation();
        _checkEvidence(member, digestA, signatureA);
        _checkEvidence(member, digestB, signatureB);
        _slash(member);
    }

    /// @notice Evidence that `member` voted for two different blocks in one consensus view.
    function slashVoteEquivocation(
        address member,
        uint64 view_,
        bytes32 blockHashA,
        bytes calldata signatureA,
        bytes32 blockHashB,
        bytes calldata signatureB
    ) external {
        if (blockHashA == blockHashB) revert NotEquivocation();
        _checkEvidence(member, voteDigest(view_, blockHashA), signatureA);
        _checkEvidence(member, voteDigest(view_, blockHashB), signatureB);
        _slash(member);
    }

    /// @notice Evidence that `member`, as leader, proposed two different blocks in one view.
    function slashProposalEquivocation(
        address member,
        uint64 view_,
        bytes32 blockHashA,
        bytes calldata signatureA,
        bytes32 blockHashB,
        bytes calldata signatureB
    ) external {
        if (blockHashA == blockHashB) revert NotEquivocation();
        _checkEvidence(member, proposalDigest(view_, blockHashA), signatureA);
        _checkEvidence(member, proposalDigest(view_, blockHashB), signatureB);
        _slash(member);
    }

    // ---------------------------------------------------------------- internals

    /// @dev keccak256(msgpack([consensusDomain, kind, view, blockHash])) with `kind` given as
    ///      its msgpack fixstr bytes; the domain is bin 8 (at most 255 bytes, checked at
    ///      deployment) and the hash bin 8 of 32 bytes.
    function _consensusDigest(bytes memory kind, uint64 view_, bytes32 blockHash)
        private
        view
        returns (bytes32)
    {
        bytes memory domain = consensusDomain;
        return keccak256(
            abi.encodePacked(
                hex"94c4",
                uint8(domain.length),
                domain,
                kind,
                _msgpackUint(view_),
                hex"c420",
                blockHash
            )
        );
    }

    /// @dev One pass over the bitmap: each set bit i takes the next 65-byte signature, which
    ///      must recover to member i. Bits past the member count, bits naming an emptied slot,
    ///      malformed signatures, a signature of someone else, a length that does not match the
    ///      bitmap and fewer than quorum signers are each refused with their own error.
    function _verifyCertificate(bytes32 digest, bytes calldata certificate) internal view {
        if (certificate.length < 32) revert MalformedCertificate(certificate.length);
        uint256 bitmap = uint256(bytes32(certificate[0:32]));
        Seats memory seats = _seats;
        uint256 n = seats.slots;
        // a committee emptied by slashing certifies nothing (the escape hatch remains)
        if (seats.active == 0) revert InvalidCommittee();
        uint256 offset = 32;
        uint256 count = 0;
        for (uint256 i = 0; bitmap >> i != 0; ++i) {
            if ((bitmap >> i) & 1 == 0) continue;
            if (i >= n) revert SignerNotMember(i, n);
            if (certificate.length < offset + 65) revert MalformedCertificate(certificate.length);
            address member = _memberAt[i];
            if (member == address(0)) revert EmptySlot(i);
            address recovered = _recoverStrict(digest, certificate[offset:offset + 65], i);
            if (recovered != member) _refuseSigner(i, recovered, member, bitmap);
            offset += 65;
            ++count;
        }
        if (offset != certificate.length) revert MalformedCertificate(certificate.length);
        uint256 needed = _quorumOf(seats.active);
        if (count < needed) revert TooFewSignatures(count, needed);
    }

    /// @dev Failure path only: a signature by a member whose own bit is also set is that
    ///      member signing twice; anything else is the wrong signer for the slot.
    function _refuseSigner(uint256 index, address recovered, address expected, uint256 bitmap)
        private
        view
    {
        uint256 n = _seats.slots;
        for (uint256 j = 0; j < n; ++j) {
            if (_memberAt[j] == recovered && (bitmap >> j) & 1 == 1) {
                revert DuplicateSigner(index, recovered);
            }
        }
        revert WrongSigner(index, expected, recovered);
    }

    function _recoverStrict(bytes32 digest, bytes calldata signature, uint256 index)
        private
        pure
        returns (address recovered)
    {
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > SECP256K1_HALF_ORDER || (v != 27 && v != 28)) {
            revert MalformedSignature(index);
        }
        recovered = ecrecover(digest, v, r, s);
        if (recovered == address(0)) revert MalformedSignature(index);
    }

    function _checkEvidence(address member, bytes32 digest, bytes calldata signature)
        private
        pure
    {
        if (member == address(0) || _recover(digest, signature) != member) {
            revert EvidenceSignatureInvalid(member);
        }
    }

    function _headerDigest(BatchHeader calldata header) private view returns (bytes32) {
        return batchDigest(
            header.batchNumber,
            header.prevStateRoot,
            header.newStateRoot,
            header.withdrawalsRoot,
            header.l1MessagesConsumed,
            header.batchDataHash
        );
    }

    /// @dev Takes the whole bond: the reporter's share to the caller, the rest deposited to the
    ///      insurance account; an active member's slot is emptied in place (address(0)), so no
    ///      other member's index moves and the quorum counts the members still seated.
    function _slash(address member) private {
        Stake storage stake = stakes[member];
        Status status = stake.status;
        if (status != Status.Active && status != Status.Unbonding) {
            revert NotSlashable(member, status);
        }
        uint256 amount = stake.bond;
        stake.bond = 0;
        stake.unbondingEnds = 0;
        stake.status = Status.Slashed;
        totalBonded -= amount;
        if (status == Status.Active) {
            if (amount == 0) --genesisUnbonded;
            uint256 i = 0;
            while (_memberAt[i] != member) ++i;
            delete _memberAt[i];
            --_seats.active;
        }
        uint256 reward = (amount * reporterShareBps) / BPS;
        uint256 insurance = amount - reward;
        if (insurance > 0) {
            totalDeposited += insurance;
            _appendMessage(KIND_DEPOSIT, insuranceAccount, insurance, 0);
        }
        emit MemberSlashed(member, msg.sender, amount, reward, insurance);
        _safeTransfer(msg.sender, reward);
    }

    function _quorumOf(uint256 active) private pure returns (uint256) {
        return active - (active == 0 ? 0 : (active - 1) / 3);
    }

    /// @dev msgpack's shortest encoding of a non-negative integer below 2^64.
    function _msgpackUint(uint64 value) private pure returns (bytes memory) {
        if (value < 0x80) return abi.encodePacked(uint8(value));
        if (value <= type(uint8).max) return abi.encodePacked(hex"cc", uint8(value));
        if (value <= type(uint16).max) return abi.encodePacked(hex"cd", uint16(value));
        if (value <= type(uint32).max) return abi.encodePacked(hex"ce", uint32(value));
        return abi.encodePacked(hex"cf", value);
    }
}
